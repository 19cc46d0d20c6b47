//! What each instance asked of the host's capabilities, per request: Postgres
//! connection opens and statements, key-value opens and operations, and
//! variable reads (each capability counts its own in its state). Logged when
//! an instance retires, at debug level under [`TARGET`]
//! (`RUST_LOG=chat_host::calls=debug`), so anyone can see what a route asks
//! of its host; under Spin each of these is a pool checkout, a prepared
//! statement or a SQLite access.

pub const TARGET: &str = "chat_host::calls";

/// What one instance asked for in all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCounts {
    pub requests: u64,
    pub postgres_opens: u64,
    pub postgres_statements: u64,
    pub key_value_operations: u64,
    pub variable_reads: u64,
}

impl CallCounts {
    /// What was asked after `earlier` (every count only grows).
    pub fn since(&self, earlier: &CallCounts) -> CallCounts {
        CallCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            postgres_opens: self.postgres_opens.saturating_sub(earlier.postgres_opens),
            postgres_statements: self
                .postgres_statements
                .saturating_sub(earlier.postgres_statements),
            key_value_operations: self
                .key_value_operations
                .saturating_sub(earlier.key_value_operations),
            variable_reads: self.variable_reads.saturating_sub(earlier.variable_reads),
        }
    }

    /// One line of averages per request; `None` before any request.
    pub fn per_request(&self) -> Option<String> {
        let requests = self.requests as f64;
        let per = |count: u64| count as f64 / requests;
        (self.requests > 0).then(|| {
            format!(
                "per request: {:.2} Postgres opens, {:.2} statements, \
                 {:.2} key-value operations (opens included), {:.2} variable reads",
                per(self.postgres_opens),
                per(self.postgres_statements),
                per(self.key_value_operations),
                per(self.variable_reads),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_averages_over_the_requests_served() {
        let counts = CallCounts {
            requests: 4,
            postgres_opens: 4,
            postgres_statements: 6,
            key_value_operations: 2,
            variable_reads: 1,
        };
        assert_eq!(
            counts.per_request().unwrap(),
            "per request: 1.00 Postgres opens, 1.50 statements, \
             0.50 key-value operations (opens included), 0.25 variable reads"
        );
        assert_eq!(CallCounts::default().per_request(), None);
    }

    #[test]
    fn what_was_asked_since_a_report_is_the_difference() {
        let earlier = CallCounts {
            requests: 1,
            postgres_opens: 1,
            postgres_statements: 2,
            key_value_operations: 0,
            variable_reads: 3,
        };
        let now = CallCounts {
            requests: 3,
            postgres_opens: 3,
            postgres_statements: 5,
            key_value_operations: 1,
            variable_reads: 3,
        };
        assert_eq!(
            now.since(&earlier),
            CallCounts {
                requests: 2,
                postgres_opens: 2,
                postgres_statements: 3,
                key_value_operations: 1,
                variable_reads: 0,
            }
        );
    }
}
