//! The sample one host writes each interval, as the JSON member of `ZADD perf:<host> <t> <json>`.
//!
//! The dashboard and the wasm aggregation read these fields, so the shape is stable (docs/COLLECTOR.md): rates in
//! bytes per second, memory in bytes, percentages with one decimal, load averages with two.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::proc::{TcpCounts, TCP_STATES};

/// Top processes kept per sample.
pub const TOP_PROCESSES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// `<host>:<t>`, unique per sample.
    pub id: String,
    /// Unix time in milliseconds; also the member's score.
    pub t: u64,
    pub host: String,
    pub cpu: Cpu,
    pub mem: Mem,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    pub net: Net,
    pub disk: Disk,
    pub tcp: Tcp,
    /// The busiest processes, busiest first.
    pub procs: Vec<Process>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cpu {
    /// Busy percentage of the whole machine, 0 to 100.
    pub total: f64,
    /// Busy percentage of each core, 0 to 100.
    pub cores: Vec<f64>,
}

/// Bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mem {
    pub total: u64,
    pub used: u64,
    pub available: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

/// Bytes per second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Net {
    /// Received by every interface but loopback.
    pub rx: u64,
    /// Sent by every interface but loopback.
    pub tx: u64,
    pub ifaces: BTreeMap<String, NetRate>,
}

/// Bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NetRate {
    pub rx: u64,
    pub tx: u64,
}

/// Bytes per second, over whole disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub read: u64,
    pub write: u64,
}

/// Sockets per TCP state; serialized as an object with every state of [`TCP_STATES`] in the kernel's order, zeros
/// included, so every sample has the same keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tcp(pub TcpCounts);

impl Tcp {
    /// Sockets in the state named like [`TCP_STATES`]; 0 for an unknown name.
    #[cfg(test)]
    pub fn get(&self, state: &str) -> u32 {
        TCP_STATES
            .iter()
            .position(|s| *s == state)
            .map_or(0, |i| self.0[i])
    }
}

impl Serialize for Tcp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(TCP_STATES.len()))?;
        for (name, count) in TCP_STATES.iter().zip(self.0) {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    /// Share of one core, like top: 200 is two cores' worth.
    pub cpu: f64,
    /// Resident memory, bytes.
    pub mem: u64,
}

impl Sample {
    pub fn to_json(&self) -> String {
        // Plain structs of numbers, strings and maps: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `value` rounded to one decimal, for percentages.
pub fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// `value` rounded to two decimals, for load averages.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn example() -> Sample {
        let mut tcp = TcpCounts::default();
        tcp[0] = 12;
        tcp[9] = 4;
        Sample {
            id: "web-01:1700000000000".into(),
            t: 1_700_000_000_000,
            host: "web-01".into(),
            cpu: Cpu {
                total: 12.5,
                cores: vec![10.0, 15.0],
            },
            mem: Mem {
                total: 8_000,
                used: 3_000,
                available: 5_000,
                cached: 2_000,
                swap_total: 0,
                swap_used: 0,
            },
            load: [0.5, 0.25, 0.1],
            net: Net {
                rx: 100,
                tx: 50,
                ifaces: [("eth0".to_string(), NetRate { rx: 100, tx: 50 })].into(),
            },
            disk: Disk {
                read: 4096,
                write: 0,
            },
            tcp: Tcp(tcp),
            procs: vec![Process {
                pid: 1,
                name: "redis-server".into(),
                cpu: 3.2,
                mem: 12_345_678,
            }],
        }
    }

    #[test]
    fn json_shape_is_stable() {
        assert_eq!(
            example().to_json(),
            concat!(
                r#"{"id":"web-01:1700000000000","t":1700000000000,"host":"web-01","#,
                r#""cpu":{"total":12.5,"cores":[10.0,15.0]},"#,
                r#""mem":{"total":8000,"used":3000,"available":5000,"cached":2000,"swap_total":0,"swap_used":0},"#,
                r#""load":[0.5,0.25,0.1],"net":{"rx":100,"tx":50,"ifaces":{"eth0":{"rx":100,"tx":50}}},"#,
                r#""disk":{"read":4096,"write":0},"#,
                r#""tcp":{"ESTABLISHED":12,"SYN_SENT":0,"SYN_RECV":0,"FIN_WAIT1":0,"FIN_WAIT2":0,"TIME_WAIT":0,"#,
                r#""CLOSE":0,"CLOSE_WAIT":0,"LAST_ACK":0,"LISTEN":4,"CLOSING":0},"#,
                r#""procs":[{"pid":1,"name":"redis-server","cpu":3.2,"mem":12345678}]}"#
            )
        );
    }

    #[test]
    fn rounding() {
        assert_eq!(round1(12.345), 12.3);
        assert_eq!(round2(1.005_1), 1.01);
        assert_eq!(example().tcp.get("LISTEN"), 4);
        assert_eq!(example().tcp.get("NOPE"), 0);
    }
}
