//! monitor: a runtime security daemon. Kernel programs (monitor-ebpf) report process
//! executions, file opens and network connects; this crate turns them into enriched events.
//!
//! Pipeline stages, one module each: [`sensor`] (load, attach, read, decode) -> [`process`]
//! (process table) and [`container`] (cgroup -> container) -> [`event`] (the enriched event) -> [`rules`] -> [`alert`] ->
//! [`output`] (sinks).

pub mod alert;
pub mod cli;
pub mod config;
pub mod container;
pub mod event;
pub mod output;
pub mod pipeline;
pub mod process;
pub mod rules;
pub mod sensor;
pub mod service;
