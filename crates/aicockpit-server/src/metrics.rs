//! Prometheus metrics in the text exposition format, kept by hand: request
//! counts and latency per route, and gauges of live WebSocket sessions.
//! Labels are route templates (`/api/v1/workspaces/{id}`), never concrete
//! paths or user input, so the series count is bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub lsp_sessions: AtomicI64,
    pub terminal_connections: AtomicI64,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = latency.entry(route.to_string()).or_default();
        if histogram.counts.is_empty() {
            histogram.counts = vec![0; BUCKETS.len()];
        }
        let seconds = elapsed.as_secs_f64();
        for (bucket, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// The exposition text.
    pub fn render(&self, workspaces: usize, terminals: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP aicockpit_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE aicockpit_http_requests_total counter");
        for ((method, route, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "aicockpit_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP aicockpit_http_request_duration_seconds Time to the response head, by route."
        );
        let _ = writeln!(
            out,
            "# TYPE aicockpit_http_request_duration_seconds histogram"
        );
        for (route, histogram) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (bucket, count) in BUCKETS.iter().zip(&histogram.counts) {
                let _ = writeln!(
                    out,
                    "aicockpit_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bucket}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "aicockpit_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "aicockpit_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "aicockpit_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        let gauges = [
            (
                "aicockpit_lsp_sessions",
                "Open LSP WebSocket sessions.",
                self.lsp_sessions.load(Ordering::Relaxed),
            ),
            (
                "aicockpit_terminal_connections",
                "Open terminal WebSocket connections.",
                self.terminal_connections.load(Ordering::Relaxed),
            ),
            (
                "aicockpit_terminal_sessions",
                "Terminal sessions alive (attached or not).",
                terminals as i64,
            ),
            (
                "aicockpit_workspaces",
                "Workspaces known to the server.",
                workspaces as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}
