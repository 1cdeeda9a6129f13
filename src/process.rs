//! The process's own resource use for `/metrics`, in the names Prometheus clients use
//! (`process_*`), read from `/proc` at scrape time: Linux only; elsewhere nothing is written.

use std::fmt::Write;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, fixed at 100 by the Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// Appends resident memory, CPU time, open and allowed descriptors, and the start time.
pub fn render(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kib) = status_kib(&status, "VmRSS:") {
        gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", kib * 1024.0);
    }
    if let Some(kib) = status_kib(&status, "VmSize:") {
        gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", kib * 1024.0);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // Field numbers as in proc(5), minus the pid and the command name.
    if let (Some(user), Some(system)) = (tick(11), tick(12)) {
        let name = "process_cpu_seconds_total";
        let seconds = (user + system) / TICKS_PER_SECOND;
        let _ = writeln!(
            out,
            "# HELP {name} Total user and system CPU time in seconds.\n# TYPE {name} counter\n{name} {seconds}"
        );
    }
    if let (Some(start), Some(boot)) = (tick(19), boot_time()) {
        gauge(
            out,
            "process_start_time_seconds",
            "Start time since the Unix epoch in seconds.",
            boot + start / TICKS_PER_SECOND,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(out, "process_open_fds", "Open file descriptors.", fds.count() as f64);
    }
    if let Some(max) = max_open_files() {
        gauge(out, "process_max_fds", "The limit on open file descriptors.", max);
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// `VmRSS:     1234 kB` → 1234.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    status.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits.lines().find_map(|l| l.strip_prefix("Max open files"))?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let mut out = String::new();
        super::render(&mut out);
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            let value: f64 = out
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {out}"))
                .parse()
                .unwrap();
            assert!(value >= 0.0, "{name}{value}");
        }
        let rss: f64 =
            out.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).unwrap().parse().unwrap();
        assert!(rss > 1_000_000.0, "a test process holds more than a megabyte: {rss}");
    }
}
