// One database per hold of the lock: writers wait for one database's copy at most, never
// for the whole keyspace's.
let mut frozen = Keyspace::new();
let mut cut = Cut::default();
for db in 0..DB_COUNT {
    let store = self.inner.store.read();
    *frozen.db_mut(db) = store.keyspace.db(db).clone();
    cut = store.cut();
}
for f in self.inner.store.read().keyspace.functions() {
    frozen.add_function(f.clone());
}
