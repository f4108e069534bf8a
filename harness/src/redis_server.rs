//! A throwaway `redis-server` for tests and comparisons (to be written).
