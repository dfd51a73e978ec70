//! SEP-31 receive API: info, transactions, callbacks.

pub mod status;
