//! The server's memory, from `/proc/PID/status`: resident now (VmRSS) and at its peak (VmHWM).

/// Resident and peak resident memory, in KiB as the kernel reports them.
#[derive(Clone, Copy, Debug)]
pub struct MemorySample {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

pub struct ServerMemory {
    pid: u32,
}

impl ServerMemory {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    pub fn sample(&self) -> Result<MemorySample, String> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {path}: {e}; is --server-pid the server's process id?"))?;
        let field = |name| {
            kib_field(&status, name)
                .ok_or_else(|| format!("{path} has no {name} line; is that a live process?"))
        };
        Ok(MemorySample { rss_kib: field("VmRSS")?, peak_kib: field("VmHWM")? })
    }

    /// Resets VmHWM to the current RSS (writing 5 to `clear_refs`, Linux 4.0 and later), so the
    /// next sample's peak covers only what ran in between. Needs the right to ptrace the
    /// server (same user, or root); returns whether it worked.
    pub fn reset_peak(&self) -> bool {
        let path = format!("/proc/{}/clear_refs", self.pid);
        match std::fs::write(&path, "5") {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "kalam-bench: cannot reset the server's peak memory through {path} ({e}); the peak shown covers its whole life"
                );
                false
            }
        }
    }
}

/// The value of a `Name:   1234 kB` line.
fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.split(':').next() == Some(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let status = "Name:\tkalamdb-server\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(102400));
        assert_eq!(kib_field(status, "VmHWM"), Some(204800));
        assert_eq!(kib_field(status, "VmSwap"), None);
    }

    #[test]
    fn samples_this_process() {
        let sample = ServerMemory::new(std::process::id()).sample().unwrap();
        assert!(sample.rss_kib > 0 && sample.peak_kib >= sample.rss_kib);
    }
}
