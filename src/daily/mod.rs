//! Per-channel daily token limits: day math in each channel's zone (`day`)
//! and the live counters with in-flight reservations (`meter`).

pub mod day;
pub mod meter;
pub mod settings;

pub use meter::{Cap, Capped, DayView, Meter, Reservation, UsageDelta};
