//! Wire protocol helpers. No I/O here.
