//! Benchmarks of the background processes, run on the real binary: the payment watcher
//! (`capstan watch`) and the payout executor (`capstan execute`). They panic, with what went
//! wrong, when a process did not do what it should have; their figures are measurements,
//! never assertions.

mod common;
pub mod executor;
pub mod watcher;
