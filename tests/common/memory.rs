//! The resident memory of the test process, which hosts the server (it runs in-process), read
//! from `/proc/self/status`. Only `tests/memory.rs` uses it: its cases run one at a time, so
//! no other test allocates while one measures.
//!
//! Include it with `#[path = "common/memory.rs"] mod memory;`.
#![allow(dead_code)] // each test binary uses a different part of the helpers

/// The peak resident memory of this process (test and in-process server) since `start`.
pub struct Memory {
    base_kib: u64,
}

impl Memory {
    pub fn start() -> Memory {
        // "5" resets the peak (VmHWM) to the current RSS (Linux >= 4.0).
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
        Memory {
            base_kib: status_kib("VmRSS:"),
        }
    }

    pub fn peak_growth_mib(&self) -> f64 {
        status_kib("VmHWM:").saturating_sub(self.base_kib) as f64 / 1024.0
    }
}

/// The resident memory of this process now, in bytes.
pub fn resident_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// A `field:` of `/proc/self/status` given in kB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status:\n{status}"))
}
