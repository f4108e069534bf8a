// BGSAVE returns as soon as it has read the cut; the copy, the slow part, is made on the
// save thread, off the caller's path.
let cut: Cut = self.inner.store.read().cut();
let time_to_cut = started.elapsed();

let (inner, dest, opts, report_cut) = (Arc::clone(&self.inner), dest.to_path_buf(), opts.clone(), cut.clone());
let handle = thread::Builder::new()
    .name("verdict-save".into())
    .spawn(move || {
        let store = inner.store.read();
        let mut frozen = Keyspace::new();
        for db in 0..DB_COUNT {
            *frozen.db_mut(db) = store.keyspace.db(db).clone();
        }
        for f in store.keyspace.functions() {
            frozen.add_function(f.clone());
        }
        drop(store);
        let result = write_snapshot(&frozen, &dest, &opts, Self::NAME).map(|stats| SaveReport {
            strategy: Self::NAME,
            path: dest.clone(),
            cut: report_cut,
            time_to_cut,
            duration: started.elapsed(),
            bytes: stats.bytes,
            keys: stats.keys,
            finished_at_ms: unix_ms_now(),
            figures: vec![("copy_us", time_to_cut.as_micros() as u64)],
        });
        ticket.finish(result)
    })
    .map_err(|e| SaveError::Aborted(format!("could not start the save thread: {e}")))?;
Ok(BgSave::new(cut, time_to_cut, handle))
