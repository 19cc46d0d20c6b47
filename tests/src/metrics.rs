//! chat-host's Prometheus metrics (`chat-host up --metrics-listen`), as a
//! test reads them.

/// The metrics text served at `address` (host and port).
pub async fn scrape(address: &str) -> String {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap_or_else(|error| panic!("scraping the metrics at {address}: {error}"));
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.expect("the metrics text")
}

/// The value of the metrics line that starts with `series` (name and labels
/// as written), if there is one.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}
