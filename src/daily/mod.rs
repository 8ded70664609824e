//! Per-channel daily token limits: day math in each channel's zone (`day`),
//! the live counters with in-flight reservations (`counters`), and the
//! channel settings that configure them (`settings`).

pub mod counters;
pub mod day;
pub mod settings;

pub use counters::{Cap, Capped, Counters, DayView, Reservation, UsageDelta};
