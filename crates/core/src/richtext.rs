//! Rich text (a note's body): plain text, or the vendor's HTML, reduced to one plain form.
//!
//! Vendors disagree on how a note's body is held: HubSpot and Dataverse keep HTML, Salesforce's
//! classic `Note` keeps plain text, Pipedrive sanitises what it is sent. The same note read from
//! two of them must hash the same, so a [`crate::model::FieldType::RichText`] field's checksum
//! covers [`to_plain`] of its text, never the markup. The value carried to the sink stays the
//! vendor's text; a connector whose vendor stores plain text writes [`to_plain`] of it.

/// Tags that end a line: their opening and closing tags both become a line break.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "tfoot",
    "thead",
    "tr",
    "ul",
];

/// Tags whose content is not text a person wrote: dropped whole.
const HIDDEN_TAGS: &[&str] = &["script", "style", "head", "title"];

/// The plain-text form of `text`, plain or HTML: tags removed (block tags such as `p`, `div`,
/// `br`, `li`, `tr` and headings become line breaks, table cells a space), the content of
/// `script` and `style` dropped, comments dropped, character references decoded (named,
/// decimal and hex), no-break spaces made spaces, runs of spaces and tabs collapsed to one,
/// each line trimmed, blank lines dropped, and the whole trimmed. Every other character is
/// kept exactly as it was (non-ASCII text included).
///
/// A `<` that does not open a tag (`a < b`, or no closing `>`) is text, so that a plain-text
/// body that mentions one survives.
pub fn to_plain(text: &str) -> String {
    let mut flat = String::with_capacity(text.len());
    let mut run_start = 0;
    let mut at = 0;
    let bytes = text.as_bytes();
    while at < bytes.len() {
        if bytes[at] != b'<' {
            at += 1;
            continue;
        }
        let Some(markup) = markup_at(text, at) else {
            at += 1;
            continue;
        };
        push_text(&mut flat, &text[run_start..at]);
        match markup {
            Markup::Comment { end } => at = end,
            Markup::Tag { name, closing, end } => {
                at = end;
                if !closing && HIDDEN_TAGS.contains(&name.as_str()) {
                    at = hidden_content_end(text, end, &name);
                } else if BLOCK_TAGS.contains(&name.as_str()) {
                    flat.push('\n');
                } else if name == "td" || name == "th" {
                    flat.push(' ');
                }
            }
        }
        run_start = at;
    }
    push_text(&mut flat, &text[run_start..]);
    tidy(&flat)
}

/// Appends a run of text between tags, its character references decoded.
fn push_text(out: &mut String, run: &str) {
    if run.contains('&') {
        out.push_str(&html_escape::decode_html_entities(run));
    } else {
        out.push_str(run);
    }
}

/// Markup that starts at a `<`.
enum Markup {
    /// `<!-- ... -->`, or another `<!...>` / `<?...>` declaration; `end` is past it.
    Comment { end: usize },
    /// A start or end tag, its name in lower case; `end` is past its `>`.
    Tag {
        name: String,
        closing: bool,
        end: usize,
    },
}

/// The markup that starts at byte `at` (a `<`), or `None` when the `<` is text.
fn markup_at(text: &str, at: usize) -> Option<Markup> {
    let rest = &text[at + 1..];
    if let Some(comment) = rest.strip_prefix("!--") {
        let end = comment.find("-->").map_or(text.len(), |i| at + 4 + i + 3);
        return Some(Markup::Comment { end });
    }
    let first = rest.chars().next()?;
    if first == '!' || first == '?' {
        let close = rest.find('>')?;
        return Some(Markup::Comment {
            end: at + 1 + close + 1,
        });
    }
    let (closing, name_part) = match rest.strip_prefix('/') {
        Some(after) => (true, after),
        None => (false, rest),
    };
    if !name_part.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name_len = name_part
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == ':'))
        .unwrap_or(name_part.len());
    let name = name_part[..name_len].to_ascii_lowercase();
    // The tag ends at the first `>` outside a quoted attribute value.
    let attrs_start = at + 1 + usize::from(closing) + name_len;
    let mut quote: Option<char> = None;
    for (i, c) in text[attrs_start..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                return Some(Markup::Tag {
                    name,
                    closing,
                    end: attrs_start + i + 1,
                });
            }
            (None, '<') => return None,
            (None, _) => {}
        }
    }
    None
}

/// Where the content of a hidden element (`script`, `style`) that starts at `from` ends: past
/// its end tag, or the end of the text when it has none.
fn hidden_content_end(text: &str, from: usize, name: &str) -> usize {
    let lower = text[from..].to_ascii_lowercase();
    let end_tag = format!("</{name}");
    match lower.find(&end_tag) {
        Some(i) => {
            let tag_at = from + i;
            match markup_at(text, tag_at) {
                Some(Markup::Tag { end, .. }) => end,
                _ => tag_at + end_tag.len(),
            }
        }
        None => text.len(),
    }
}

/// Line breaks unified, spaces collapsed, lines trimmed, blank lines dropped.
fn tidy(flat: &str) -> String {
    let mut out = String::with_capacity(flat.len());
    let unified = flat.replace("\r\n", "\n");
    for line in unified.split(['\n', '\r']) {
        let mut words = line
            .split([' ', '\t', '\u{A0}', '\u{0B}', '\u{0C}'])
            .filter(|w| !w.is_empty())
            .peekable();
        if words.peek().is_none() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let mut first = true;
        for word in words {
            if !first {
                out.push(' ');
            }
            out.push_str(word);
            first = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_plain;

    #[test]
    fn html_and_plain_text_of_the_same_note_agree() {
        assert_eq!(
            to_plain("<p>Call Jane &amp; Bob</p><p>re: renewal</p>"),
            "Call Jane & Bob\nre: renewal"
        );
        assert_eq!(
            to_plain("Call Jane & Bob\nre: renewal"),
            "Call Jane & Bob\nre: renewal"
        );
        assert_eq!(
            to_plain("<div>Call Jane &amp; Bob<br/>re: renewal</div>"),
            to_plain("  Call  Jane\t&  Bob \r\n\r\n re: renewal\n")
        );
    }

    #[test]
    fn block_tags_break_lines_and_inline_tags_vanish() {
        assert_eq!(
            to_plain("<h1>Plan</h1><ul><li>one</li><li><b>two</b> <i>parts</i></li></ul>"),
            "Plan\none\ntwo parts"
        );
        assert_eq!(
            to_plain("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th></tr></table>"),
            "a b\nc"
        );
        assert_eq!(
            to_plain("one<BR>two<br />three<Br/>four"),
            "one\ntwo\nthree\nfour"
        );
        assert_eq!(
            to_plain(r#"<a href="https://example.com/?a=1&b=2" title='x > y'>link</a> here"#),
            "link here"
        );
        assert_eq!(to_plain("<p></p><div> </div>"), "");
    }

    #[test]
    fn entities_are_decoded_named_decimal_and_hex() {
        assert_eq!(
            to_plain("&lt;tag&gt; &quot;q&quot; &#39;s&#x27; &eacute;&#233;&#xE9; &hellip;&euro;"),
            "<tag> \"q\" 's' ééé …€"
        );
        // A decoded `<p>` is text, not a tag.
        assert_eq!(to_plain("&lt;p&gt;x&lt;/p&gt;"), "<p>x</p>");
        // A no-break space is a space, and collapses with its neighbours.
        assert_eq!(to_plain("a&nbsp;&nbsp; b\u{A0}c"), "a b c");
    }

    #[test]
    fn scripts_styles_and_comments_are_dropped() {
        assert_eq!(
            to_plain(
                "<style>p { color: red }</style>Hi<script>alert('<p>x</p>')</SCRIPT> \
                 there<!-- secret -->!<?xml version=\"1.0\"?>"
            ),
            "Hi there!"
        );
        assert_eq!(to_plain("before<script>never closed"), "before");
        assert_eq!(to_plain("a<!-- never closed"), "a");
    }

    #[test]
    fn unicode_is_kept_exactly() {
        let body = "Zápis z porady: Łódź → 東京, 👍 naïve café\nŘádek dva";
        assert_eq!(to_plain(body), body);
        assert_eq!(
            to_plain("<p>Zápis z porady: Łódź → 東京, 👍 naïve café</p><p>Řádek dva</p>"),
            body
        );
    }

    #[test]
    fn a_lone_angle_bracket_is_text() {
        assert_eq!(to_plain("price < 5 and > 3"), "price < 5 and > 3");
        assert_eq!(to_plain("if a<b then"), "if a<b then");
        assert_eq!(to_plain("<3 you"), "<3 you");
        assert_eq!(to_plain(""), "");
    }
}
