//! `snaplab compare --repeat N`: every row run N times, each figure reported as the median
//! of the runs with the smallest and largest beside it.
//!
//! One run on a shared machine varies by tens of percent (another process takes a core, the
//! page cache is warm or not); the median of a few runs is robust to one bad run, and the
//! min-max range shows how far a single run may land from it. Ratios in the table (`x redis`,
//! `p99/base`) are computed from the medians.
//!
//! The aggregate row keeps every field of a single run's row, holding the median (rounded
//! to an integer for counts and bytes), so a reader of one run's JSON reads N runs' the
//! same way, and adds:
//! - `runs`: every run's own row, in the order they ran;
//! - `spread`: for each numeric field, `{"median", "min", "max", "runs"}` (`runs`: how many
//!   runs had the figure, since one that does not apply in a run is `null` there); a
//!   strategy's own figure appears as `figures.<name>`.
//!
//! `verified` is true only if every run verified, `overloaded` if any run was.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CompareRow;

/// One figure over the runs of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median: the middle value, or the mean of the two middle values for an even count.
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many runs had the figure (a figure that did not apply in a run is left out).
    pub runs: usize,
}

impl Spread {
    /// The spread of `values`; `None` when there are none. NaN values are left out.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1], runs: n })
    }
}

/// The key a strategy's own figure `name` has in [`CompareRow::spread`].
pub fn figure_key(name: &str) -> String {
    format!("figures.{name}")
}

/// The median of one numeric field over `objs`, with its spread; `None` when no run has a
/// number there. The median of integers (counts, bytes) is rounded to an integer.
fn field(values: impl Iterator<Item = Option<Value>>) -> Option<(Value, Spread)> {
    let values: Vec<Value> = values.flatten().filter(Value::is_number).collect();
    let nums: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    let spread = Spread::of(&nums)?;
    let median = if values.iter().all(|v| v.is_u64()) {
        Value::from(spread.median.round() as u64)
    } else {
        Value::from(spread.median)
    };
    Some((median, spread))
}

/// One row out of the runs of the same strategy (or the Redis row): every figure the median
/// of the runs, `runs` and `spread` as the module says. A single run is returned unchanged,
/// so one run's JSON stays what it was.
///
/// # Errors
/// No runs, or runs of different rows.
pub fn aggregate(runs: Vec<CompareRow>) -> Result<CompareRow> {
    let Some(first) = runs.first() else { bail!("no runs to aggregate") };
    if let Some(other) = runs.iter().find(|r| r.strategy != first.strategy) {
        bail!("runs of {} and {} cannot make one row", first.strategy, other.strategy);
    }
    if runs.len() == 1 {
        return Ok(runs.into_iter().next().expect("one run"));
    }
    let objs: Vec<Map<String, Value>> = runs
        .iter()
        .map(|r| match serde_json::to_value(r) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => bail!("a row is not a JSON object"),
            Err(e) => Err(e.into()),
        })
        .collect::<Result<_>>()?;
    let mut out = objs[0].clone();
    let mut spread = BTreeMap::new();
    let keys: std::collections::BTreeSet<&String> = objs.iter().flat_map(|o| o.keys()).collect();
    for key in keys {
        if let Some((median, s)) = field(objs.iter().map(|o| o.get(key).cloned())) {
            out.insert(key.clone(), median);
            spread.insert(key.clone(), s);
        }
    }
    let figures = |o: &Map<String, Value>| o.get("figures").and_then(Value::as_object).cloned().unwrap_or_default();
    let names: std::collections::BTreeSet<String> =
        objs.iter().flat_map(|o| figures(o).keys().cloned().collect::<Vec<_>>()).collect();
    let mut medians = Map::new();
    for name in names {
        if let Some((median, s)) = field(objs.iter().map(|o| figures(o).get(&name).cloned())) {
            medians.insert(name.clone(), median);
            spread.insert(figure_key(&name), s);
        }
    }
    out.insert("figures".into(), Value::Object(medians));
    let mut row: CompareRow =
        serde_json::from_value(Value::Object(out)).context("the median row does not read back as a row")?;
    row.verified = runs.iter().all(|r| r.verified);
    row.verify_error =
        runs.iter().enumerate().find_map(|(i, r)| r.verify_error.as_ref().map(|e| format!("run {}: {e}", i + 1)));
    row.overloaded = runs.iter().any(|r| r.overloaded);
    row.overload_reason =
        runs.iter().enumerate().find_map(|(i, r)| r.overload_reason.as_ref().map(|e| format!("run {}: {e}", i + 1)));
    row.spread = spread;
    row.runs = runs;
    Ok(row)
}

/// The run to draw a repeated row's plots from: the one whose save took the median time
/// (the earlier of two equally near).
pub fn median_run(runs: &[CompareRow]) -> usize {
    let Some(m) = Spread::of(&runs.iter().map(|r| r.save_ms).collect::<Vec<_>>()) else { return 0 };
    (0..runs.len())
        .min_by(|&a, &b| (runs[a].save_ms - m.median).abs().total_cmp(&(runs[b].save_ms - m.median).abs()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{overload, row_figures};
    use crate::load::LatencyStats;

    fn row(save_ms: f64, p99: Option<f64>, file_bytes: u64, figure: Option<f64>) -> CompareRow {
        CompareRow {
            strategy: "s".into(),
            save_ms,
            latency_p99_us: p99,
            file_bytes,
            verified: true,
            figures: figure.map(|f| ("fork_us".to_string(), f)).into_iter().collect(),
            ..row_figures(&LatencyStats::new(&[], 0, 0, 0, 0), overload::Overload::default(), None, None)
        }
    }

    /// Odd count: the middle value, whatever order the runs came in.
    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value() {
        let s = Spread::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(s, Spread { median: 3.0, min: 1.0, max: 5.0, runs: 3 });
        assert_eq!(Spread::of(&[2.5]).unwrap(), Spread { median: 2.5, min: 2.5, max: 2.5, runs: 1 });
        assert_eq!(Spread::of(&[]), None);
    }

    /// Even count: the mean of the two middle values, not either of them.
    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_two_middle_values() {
        let s = Spread::of(&[10.0, 1.0, 4.0, 2.0]).unwrap();
        assert_eq!(s, Spread { median: 3.0, min: 1.0, max: 10.0, runs: 4 });
    }

    /// Three runs make one row holding the medians, with each figure's range in `spread`
    /// and every run kept; a figure missing in one run (null latency, an absent strategy
    /// figure) is the median of the runs that have it, and says how many did.
    #[test]
    fn runs_aggregate_to_medians_with_their_range_and_a_missing_figure_is_left_out() {
        let runs = vec![
            row(30.0, Some(900.0), 1001, Some(7.0)),
            row(10.0, None, 1000, None),
            row(20.0, Some(100.0), 1004, Some(5.0)),
        ];
        let agg = aggregate(runs.clone()).unwrap();
        assert_eq!(agg.save_ms, 20.0);
        assert_eq!(agg.spread["save_ms"], Spread { median: 20.0, min: 10.0, max: 30.0, runs: 3 });
        // Two runs have a p99: their mean is the median; the null run is not a 0.
        assert_eq!(agg.latency_p99_us, Some(500.0));
        assert_eq!(agg.spread["latency_p99_us"].runs, 2);
        assert_eq!(agg.figures["fork_us"], 6.0);
        assert_eq!(agg.spread[&figure_key("fork_us")], Spread { median: 6.0, min: 5.0, max: 7.0, runs: 2 });
        assert_eq!(agg.file_bytes, 1001);
        // A figure no run has stays null, with no spread.
        assert_eq!(agg.latency_p50_us, None);
        assert!(!agg.spread.contains_key("latency_p50_us"));
        assert_eq!(agg.runs.len(), 3);
        assert_eq!(agg.runs[1].save_ms, 10.0);
        assert!(agg.verified);
        // Integers stay integers: the median of two byte counts is rounded.
        let two = aggregate(vec![row(1.0, None, 1000, None), row(2.0, None, 1003, None)]).unwrap();
        assert_eq!(two.file_bytes, 1002);
        assert_eq!(two.save_ms, 1.5);
    }

    /// Redis's load time is unknown when its log does not say (NaN, `null` in JSON): runs
    /// without it still aggregate, and the row's load time stays unknown.
    #[test]
    fn an_unknown_load_time_stays_unknown() {
        let unknown = CompareRow { load_ms: f64::NAN, ..row(1.0, None, 1, None) };
        let agg = aggregate(vec![unknown.clone(), unknown]).unwrap();
        assert!(agg.load_ms.is_nan());
        assert!(!agg.spread.contains_key("load_ms"));
        let back: CompareRow = serde_json::from_value(serde_json::to_value(&agg).unwrap()).unwrap();
        assert!(back.load_ms.is_nan());
    }

    /// The table prints the median with the range beside it, in the column's own unit, and
    /// a single run's cell as before.
    #[test]
    fn the_table_prints_the_range_beside_the_median() {
        let agg =
            aggregate(vec![row(30.0, Some(900.0), 1, None), row(10.0, Some(100.0), 1, None), row(20.0, None, 1, None)])
                .unwrap();
        let t = crate::compare::table(&[agg]);
        let save = t.lines().find(|l| l.starts_with("s ") && l.ends_with("yes")).unwrap();
        assert!(save.contains(" 20.0 (10.0-30.0) "), "{t}");
        let writes = t.lines().find(|l| l.starts_with("s ") && l.contains("500 (100-900)")).unwrap_or_default();
        assert!(!writes.is_empty(), "{t}");
        let one = crate::compare::table(&[row(20.0, Some(500.0), 1, None)]);
        assert!(!one.lines().any(|l| l.starts_with("s ") && l.contains('(')), "{one}");
    }

    /// One failed run fails the row, and its error names the run; one overloaded run flags it.
    #[test]
    fn one_bad_run_marks_the_row() {
        let mut bad = row(1.0, None, 1, None);
        bad.verified = false;
        bad.verify_error = Some("key k differs".into());
        bad.overloaded = true;
        let agg = aggregate(vec![row(1.0, None, 1, None), bad]).unwrap();
        assert!(!agg.verified && agg.overloaded);
        assert_eq!(agg.verify_error.as_deref(), Some("run 2: key k differs"));
    }

    /// A single run is the row itself: no `runs`, no `spread` in its JSON.
    #[test]
    fn a_single_run_keeps_its_json() {
        let one = row(1.0, Some(2.0), 3, Some(4.0));
        let agg = aggregate(vec![one.clone()]).unwrap();
        assert_eq!(serde_json::to_value(&agg).unwrap(), serde_json::to_value(&one).unwrap());
        let json = serde_json::to_value(&agg).unwrap();
        assert!(json.get("runs").is_none() && json.get("spread").is_none(), "{json}");
        let mut other = one.clone();
        other.strategy = "t".into();
        assert!(aggregate(vec![one, other]).is_err());
    }

    /// The plots are drawn from the run whose save time is nearest the median.
    #[test]
    fn the_median_run_is_the_one_nearest_the_median_save() {
        let runs = vec![row(30.0, None, 1, None), row(12.0, None, 1, None), row(10.0, None, 1, None)];
        assert_eq!(median_run(&runs), 1);
    }
}
