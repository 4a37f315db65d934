//! Everything that touches the four folders: `folders` (names, atomic moves, no-replace
//! renames), `lifecycle` (claim, finish), `recover` (what a crash left, at start), `report` (the JSON report
//! written beside a file) and `history` (reports read back at start). Nothing here keeps job
//! state in memory or knows about HTTP.

pub mod folders;
pub mod history;
pub mod lifecycle;
pub mod recover;
pub mod report;
