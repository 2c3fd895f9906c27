//! `$batch` bodies: writing a multipart/mixed request of independent requests (no change
//! sets: each record succeeds or fails on its own) and reading the multipart response.

use ferry_core::{ConnectorError, ConnectorResult};

use crate::VENDOR;

/// One request of a batch.
pub(crate) struct Request {
    /// `PATCH`, …
    pub method: &'static str,
    /// Absolute path and query (`/api/data/v9.2/contacts(…)?$select=contactid`).
    pub target: String,
    /// The JSON body.
    pub body: String,
}

/// One response of a batch.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// The batch body and its boundary.
pub(crate) fn build(boundary: &str, requests: &[&Request]) -> String {
    let mut out = String::new();
    for r in requests {
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
             {} {} HTTP/1.1\r\nContent-Type: application/json\r\nPrefer: return=representation\r\n\r\n{}\r\n",
            r.method, r.target, r.body
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out
}

/// The boundary of a `multipart/mixed` content type.
pub(crate) fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Parses a batch response into its responses, in order.
pub(crate) fn parse(endpoint: &str, body: &str, boundary: &str) -> ConnectorResult<Vec<Response>> {
    let malformed = |detail: &str| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: endpoint.to_owned(),
        detail: detail.to_owned(),
    };
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--");
    let mut parts: Vec<Vec<&str>> = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    let mut closed = false;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_end();
        if trimmed == delimiter || trimmed == closing {
            parts.extend(current.take());
            if trimmed == closing {
                closed = true;
                break;
            }
            current = Some(Vec::new());
            continue;
        }
        if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    if !closed {
        return Err(malformed("the batch response has no closing delimiter"));
    }
    let mut out = Vec::with_capacity(parts.len());
    for lines in parts {
        let mut lines = lines.into_iter();
        // The part's own headers, up to the blank line.
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with("content-type:")
                && line.to_ascii_lowercase().contains("multipart/mixed")
            {
                return Err(malformed("unexpected change set in the batch response"));
            }
        }
        let status_line = lines
            .by_ref()
            .find(|l| !l.trim().is_empty())
            .ok_or_else(|| malformed("a batch part has no status line"))?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| malformed("a batch part's status line has no status code"))?;
        // The inner response's headers, up to the blank line; the rest is the body.
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                break;
            }
        }
        let body: Vec<&str> = lines.collect();
        out.push(Response {
            status,
            body: body.join("\n").trim().to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_response_shape() {
        let body = "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
HTTP/1.1 400 Bad Request\r\nREQ_ID: x\r\nContent-Type: application/json; odata.metadata=minimal\r\nOData-Version: 4.0\r\n\r\n\
{\"error\":{\"code\":\"0x80044331\",\"message\":\"m\"}}\r\n--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n--batchresponse_1--\r\n";
        let parts = parse("POST /x", body, "batchresponse_1").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].status, 400);
        assert!(parts[0].body.starts_with("{\"error\""));
        assert_eq!((parts[1].status, parts[1].body.as_str()), (204, ""));
        assert!(parse("POST /x", "--b\r\n", "b").is_err());
        assert_eq!(
            boundary_of("multipart/mixed; boundary=batchresponse_1").as_deref(),
            Some("batchresponse_1")
        );
        let request = Request {
            method: "PATCH",
            target: "/api/data/v9.2/accounts(ferry_sourceid='a')".into(),
            body: "{}".into(),
        };
        let built = build("batch_1", &[&request]);
        assert!(built.starts_with("--batch_1\r\n") && built.ends_with("--batch_1--\r\n"));
    }
}
