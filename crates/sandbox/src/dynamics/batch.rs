//! `$batch`: the multipart/mixed request and response bodies (OData 4.0 §11.7, as the
//! Dataverse page shows them), with change sets one level deep.

use super::error::ApiError;

/// Most requests one batch may hold (documented).
pub const MAX_REQUESTS: usize = 1_000;

/// One request inside a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The URL as written (absolute, `/api/data/v9.2/…` or relative to the service root).
    pub url: String,
    /// Headers of the inner request, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The inner request's body.
    pub body: String,
    /// The `Content-ID` of the part, in a change set.
    pub content_id: Option<String>,
}

/// An item of a batch: a lone request or a change set.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A request on its own.
    Single(Part),
    /// Requests applied all or nothing.
    ChangeSet(Vec<Part>),
}

/// The boundary parameter of a `multipart/mixed` content type.
pub fn boundary(content_type: &str) -> Option<String> {
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

/// Splits a multipart body into its parts' raw text (headers and content).
fn split(body: &str, boundary: &str) -> Result<Vec<String>, ApiError> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    let mut closed = false;
    for line in body.split('\n') {
        let trimmed = line.strip_suffix('\r').unwrap_or(line);
        if trimmed.trim_end() == delimiter || trimmed.trim_end() == format!("{delimiter}--") {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\n"));
            }
            if trimmed.trim_end().ends_with("--") && trimmed.trim_end() != delimiter {
                closed = true;
                break;
            }
            current = Some(Vec::new());
            continue;
        }
        if let Some(lines) = current.as_mut() {
            lines.push(trimmed);
        }
    }
    if !closed {
        return Err(ApiError::query(
            "The batch request body is not a complete multipart/mixed message (missing the closing delimiter).",
        ));
    }
    Ok(parts)
}

/// Splits a part's text at its first blank line into header lines and the rest.
fn head_and_rest(text: &str) -> (Vec<(String, String)>, String) {
    let mut headers = Vec::new();
    let mut lines = text.split('\n');
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let rest: Vec<&str> = lines.collect();
    (headers, rest.join("\n"))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse_http(text: &str, content_id: Option<String>) -> Result<Part, ApiError> {
    let text = text.trim_start_matches(['\r', '\n']);
    let (request_line, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(ApiError::query("A batch part has no request line."));
    };
    let (headers, body) = head_and_rest(rest);
    Ok(Part {
        method: method.to_ascii_uppercase(),
        url: url.to_owned(),
        headers,
        body: body.trim().to_owned(),
        content_id,
    })
}

/// Parses a batch body.
pub fn parse(body: &str, boundary: &str) -> Result<Vec<Item>, ApiError> {
    let mut items = Vec::new();
    let mut count = 0usize;
    for raw in split(body, boundary)? {
        let (headers, content) = head_and_rest(&raw);
        let content_type = header(&headers, "content-type").unwrap_or("");
        if let Some(inner) = self::boundary(content_type) {
            let mut parts = Vec::new();
            for raw in split(&content, &inner)? {
                let (headers, content) = head_and_rest(&raw);
                let id = header(&headers, "content-id").map(str::to_owned);
                let part = parse_http(&content, id)?;
                if part.method == "GET" {
                    return Err(ApiError::query(
                        "GET requests are not allowed inside a change set.",
                    ));
                }
                parts.push(part);
            }
            count += parts.len();
            items.push(Item::ChangeSet(parts));
        } else if content_type.eq_ignore_ascii_case("application/http") {
            items.push(Item::Single(parse_http(&content, None)?));
            count += 1;
        } else {
            return Err(ApiError::query(
                "Each batch part must be application/http or a multipart/mixed change set.",
            ));
        }
        if count > MAX_REQUESTS {
            return Err(ApiError::query(format!(
                "The batch request contains more than the maximum of {MAX_REQUESTS} requests."
            )));
        }
    }
    Ok(items)
}

/// One inner response, ready to be written into the batch response.
#[derive(Clone, Debug)]
pub struct PartResponse {
    /// The status code.
    pub status: u16,
    /// Headers besides `OData-Version`.
    pub headers: Vec<(String, String)>,
    /// The JSON body, if any.
    pub body: Option<String>,
    /// The `Content-ID` of the request, in a change set.
    pub content_id: Option<String>,
}

fn reason(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

fn write_part(out: &mut String, boundary: &str, r: &PartResponse) {
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = &r.content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {}\r\nOData-Version: 4.0\r\n",
        r.status,
        reason(r.status)
    ));
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    match &r.body {
        Some(body) => out.push_str(&format!(
            "Content-Type: application/json; odata.metadata=minimal\r\n\r\n{body}\r\n"
        )),
        None => out.push_str("\r\n\r\n"),
    }
}

/// A rendered response item: a lone response or a change set's responses.
#[derive(Clone, Debug)]
pub enum ResponseItem {
    /// One response.
    Single(PartResponse),
    /// A change set's responses (or its one error).
    ChangeSet(Vec<PartResponse>),
}

/// Renders the batch response body with boundary `batchresponse_<id>`.
pub fn render(id: &str, items: &[ResponseItem]) -> (String, String) {
    let boundary = format!("batchresponse_{id}");
    let mut out = String::new();
    for (n, item) in items.iter().enumerate() {
        match item {
            ResponseItem::Single(r) => write_part(&mut out, &boundary, r),
            ResponseItem::ChangeSet(parts) => {
                let inner = format!("changesetresponse_{id}_{n}");
                out.push_str(&format!(
                    "--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n"
                ));
                for r in parts {
                    write_part(&mut out, &inner, r);
                }
                out.push_str(&format!("--{inner}--\r\n"));
            }
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/mixed; boundary={boundary}"), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_parts_and_change_sets() {
        let body = "--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
PATCH /api/data/v9.2/accounts(ferry_sourceid='a') HTTP/1.1\r\nContent-Type: application/json\r\nPrefer: return=representation\r\n\r\n\
{\"name\":\"A\"}\r\n--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_2\r\n\r\n\
--changeset_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"name\":\"B\"}\r\n--changeset_2--\r\n\
--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/accounts?$select=name HTTP/1.1\r\n\r\n\r\n--batch_1--\r\n";
        let items = parse(body, "batch_1").unwrap();
        assert_eq!(items.len(), 3);
        let Item::Single(first) = &items[0] else {
            panic!()
        };
        assert_eq!(first.method, "PATCH");
        assert_eq!(first.body, "{\"name\":\"A\"}");
        assert_eq!(
            header(&first.headers, "prefer"),
            Some("return=representation")
        );
        let Item::ChangeSet(set) = &items[1] else {
            panic!()
        };
        assert_eq!(set[0].content_id.as_deref(), Some("1"));
        let Item::Single(get) = &items[2] else {
            panic!()
        };
        assert_eq!((get.method.as_str(), get.body.as_str()), ("GET", ""));
        assert_eq!(
            boundary("multipart/mixed; boundary=\"batch_1\"").as_deref(),
            Some("batch_1")
        );
        assert!(parse("--batch_1\r\n", "batch_1").is_err());
    }
}
