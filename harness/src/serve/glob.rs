//! Redis's glob-style patterns for `SCAN MATCH`, `KEYS` and `CONFIG GET` (src/util.c
//! `stringmatchlen`): `*` any run, `?` any byte, `[abc]`, `[^a]`, `[a-z]`, `\x` a literal.

/// Whether `s` matches `pattern`, byte for byte.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    match_from(pattern, s, false)
}

/// Whether `s` matches `pattern`, ignoring ASCII case.
pub fn matches_nocase(pattern: &[u8], s: &[u8]) -> bool {
    match_from(pattern, s, true)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase { a.eq_ignore_ascii_case(&b) } else { a == b }
}

fn match_from(mut p: &[u8], mut s: &[u8], nocase: bool) -> bool {
    while let Some(&c) = p.first() {
        match c {
            b'*' => {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                if p.is_empty() {
                    return true;
                }
                return (0..=s.len()).any(|i| match_from(p, &s[i..], nocase));
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                s = &s[1..];
                p = &p[1..];
            }
            b'[' => {
                let Some(&b) = s.first() else { return false };
                let mut i = 1;
                let not = p.get(1) == Some(&b'^');
                if not {
                    i += 1;
                }
                let mut hit = false;
                while i < p.len() && p[i] != b']' {
                    if p[i] == b'\\' && i + 1 < p.len() {
                        hit |= eq(p[i + 1], b, nocase);
                        i += 2;
                    } else if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                        let (lo, hi) = (p[i].min(p[i + 2]), p[i].max(p[i + 2]));
                        let x = if nocase { b.to_ascii_lowercase() } else { b };
                        let (lo, hi) =
                            if nocase { (lo.to_ascii_lowercase(), hi.to_ascii_lowercase()) } else { (lo, hi) };
                        hit |= (lo..=hi).contains(&x);
                        i += 3;
                    } else {
                        hit |= eq(p[i], b, nocase);
                        i += 1;
                    }
                }
                if hit == not {
                    return false;
                }
                // Past the closing bracket (an unclosed class ends the pattern, as in Redis).
                p = &p[(i + 1).min(p.len())..];
                s = &s[1..];
            }
            _ => {
                let (lit, rest) = if c == b'\\' && p.len() > 1 { (p[1], &p[2..]) } else { (c, &p[1..]) };
                match s.first() {
                    Some(&b) if eq(lit, b, nocase) => {
                        s = &s[1..];
                        p = rest;
                    }
                    _ => return false,
                }
            }
        }
    }
    s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern forms Redis documents for KEYS.
    #[test]
    fn redis_patterns() {
        for (p, s, want) in [
            ("h?llo", "hello", true),
            ("h*llo", "heeeello", true),
            ("h*llo", "hllo", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hallo", false),
            ("*", "", true),
            ("key:*", "key:1", true),
            ("key:*", "other", false),
        ] {
            assert_eq!(matches(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
        }
        assert!(matches_nocase(b"SAVE", b"save"));
    }
}
