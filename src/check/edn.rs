//! A reader for EDN, the data notation Jepsen histories are written in.
//!
//! It reads the whole language (nil, booleans, numbers, strings, characters,
//! keywords, symbols, lists, vectors, maps, sets, tagged literals, `#_`
//! discards, `;` comments, `##Inf`-style symbolic values) into a tree whose
//! every node remembers the line and column it starts at, so a history that is
//! well-formed EDN but not a history (`:type :banana`) can still be blamed on
//! the exact spot. Numbers and characters are kept as their text: the checker
//! only compares values, and a value is its EDN text.
//!
//! Hand-written rather than the `edn-format` crate: that one brings big
//! integers, decimals, dates and UUIDs (a dozen crates) to build values this
//! reader would only turn back into text, and its values carry no positions.

use std::fmt;

/// Where a form starts: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counting characters.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A form that does not read, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct EdnError {
    /// Where the problem is.
    pub at: Pos,
    /// What it is.
    pub message: String,
}

/// One EDN form and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the form starts.
    pub at: Pos,
    /// The form.
    pub value: Edn,
}

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`
    Nil,
    /// `true`, `false`
    Bool(bool),
    /// An integer, float, ratio or symbolic value (`##Inf`), as written.
    Number(String),
    /// A string, unescaped.
    Str(String),
    /// A character, as written (`\a`, `\newline`).
    Char(String),
    /// A keyword, without its colon.
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// `( ... )`
    List(Vec<Node>),
    /// `[ ... ]`
    Vector(Vec<Node>),
    /// `#{ ... }`
    Set(Vec<Node>),
    /// `{ k v ... }`, in the order written.
    Map(Vec<(Node, Node)>),
    /// `#tag form`
    Tagged(String, Box<Node>),
}

impl Edn {
    /// The keyword's name, if this is a keyword.
    pub fn keyword(&self) -> Option<&str> {
        match self {
            Edn::Keyword(k) => Some(k),
            _ => None,
        }
    }

    /// The integer, if this is one that fits an `i64` (`3`, `-1`, `3N`).
    pub fn integer(&self) -> Option<i64> {
        match self {
            Edn::Number(n) => n.strip_suffix('N').unwrap_or(n).parse().ok(),
            _ => None,
        }
    }

    /// The elements, if this is a vector or a list.
    pub fn sequence(&self) -> Option<&[Node]> {
        match self {
            Edn::Vector(v) | Edn::List(v) => Some(v),
            _ => None,
        }
    }

    /// The value under keyword `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value.keyword() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, open: &str, items: &[Node], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (i, n) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{}", n.value)?;
    }
    f.write_str(close)
}

/// The value's EDN text, in one canonical spelling (single spaces, no commas).
impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Number(n) | Edn::Char(n) | Edn::Symbol(n) => f.write_str(n),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::List(v) => join(f, "(", v, ")"),
            Edn::Vector(v) => join(f, "[", v, "]"),
            Edn::Set(v) => join(f, "#{", v, "}"),
            Edn::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} {}", k.value, v.value)?;
                }
                f.write_str("}")
            }
            Edn::Tagged(tag, v) => write!(f, "#{tag} {}", v.value),
        }
    }
}

/// How deep collections may nest before the reader refuses (a stack guard).
const MAX_DEPTH: usize = 256;

/// Reads the forms of one text, one after the other.
pub struct Reader<'a> {
    src: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
    depth: usize,
}

/// Every top-level form of `text`.
pub fn read_all(text: &str) -> Result<Vec<Node>, EdnError> {
    let mut r = Reader::new(text);
    let mut out = Vec::new();
    while let Some(n) = r.next_form()? {
        out.push(n);
    }
    Ok(out)
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b',' | b';'
        )
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Reader {
            src: text.as_bytes(),
            i: 0,
            line: 1,
            col: 1,
            depth: 0,
        }
    }

    /// The next top-level form, or `None` at the end of the text.
    pub fn next_form(&mut self) -> Result<Option<Node>, EdnError> {
        self.skip_space()?;
        if self.peek().is_none() {
            return Ok(None);
        }
        let n = self.form()?;
        Ok(Some(n))
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn err<T>(&self, at: Pos, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError {
            at,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    fn peek2(&self) -> Option<u8> {
        self.src.get(self.i + 1).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        if b == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Count characters, not the continuation bytes of UTF-8.
            self.col += 1;
        }
        Some(b)
    }

    /// Whitespace, commas, `;` comments and `#_` discarded forms.
    fn skip_space(&mut self) -> Result<(), EdnError> {
        loop {
            match self.peek() {
                Some(b) if b.is_ascii_whitespace() || b == b',' => {
                    self.bump();
                }
                Some(b';') => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.bump();
                    }
                }
                Some(b'#') if self.peek2() == Some(b'_') => {
                    let at = self.pos();
                    self.bump();
                    self.bump();
                    self.skip_space()?;
                    if matches!(self.peek(), None | Some(b')' | b']' | b'}')) {
                        return self.err(at, "#_ discards nothing");
                    }
                    self.form()?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// One form; the caller has skipped the space before it.
    fn form(&mut self) -> Result<Node, EdnError> {
        let at = self.pos();
        let value = match self.peek() {
            None => return self.err(at, "the text ends where a value should be"),
            Some(b'(') => Edn::List(self.items(at, b')')?),
            Some(b'[') => Edn::Vector(self.items(at, b']')?),
            Some(b'{') => self.map(at)?,
            Some(b'"') => Edn::Str(self.string(at)?),
            Some(b'\\') => Edn::Char(self.character(at)?),
            Some(b'#') => self.dispatch(at)?,
            Some(c @ (b')' | b']' | b'}')) => {
                return self.err(at, format!("{} closes nothing", c as char))
            }
            Some(_) => self.atom(at)?,
        };
        Ok(Node { at, value })
    }

    /// The forms up to `close`; the reader is at the opening delimiter.
    fn items(&mut self, at: Pos, close: u8) -> Result<Vec<Node>, EdnError> {
        let open = self.bump().expect("at the opening delimiter");
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(at, format!("collections nest deeper than {MAX_DEPTH}"));
        }
        let mut out = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                None => {
                    return self.err(
                        at,
                        format!(
                            "this {} is never closed (expected {})",
                            open as char, close as char
                        ),
                    )
                }
                Some(c) if c == close => {
                    self.bump();
                    self.depth -= 1;
                    return Ok(out);
                }
                Some(c @ (b')' | b']' | b'}')) => {
                    let here = self.pos();
                    return self.err(
                        here,
                        format!(
                            "{} where {} (opened at {at}) should close",
                            c as char, close as char
                        ),
                    );
                }
                Some(_) => out.push(self.form()?),
            }
        }
    }

    fn map(&mut self, at: Pos) -> Result<Edn, EdnError> {
        let items = self.items(at, b'}')?;
        if items.len() % 2 == 1 {
            let last = items.last().expect("odd, so not empty").at;
            return self.err(last, "this map key has no value");
        }
        let mut it = items.into_iter();
        let mut entries = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            entries.push((k, v));
        }
        Ok(Edn::Map(entries))
    }

    fn string(&mut self, at: Pos) -> Result<String, EdnError> {
        self.bump();
        let mut bytes = Vec::new();
        loop {
            let here = self.pos();
            match self.bump() {
                None => return self.err(at, "this string is never closed"),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => bytes.push(b'\n'),
                    Some(b't') => bytes.push(b'\t'),
                    Some(b'r') => bytes.push(b'\r'),
                    Some(b'b') => bytes.push(8),
                    Some(b'f') => bytes.push(12),
                    Some(b'0') => bytes.push(0),
                    Some(c @ (b'"' | b'\\' | b'\'')) => bytes.push(c),
                    Some(b'u') => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let d = self.bump().and_then(|c| (c as char).to_digit(16));
                            let Some(d) = d else {
                                return self.err(here, "\\u needs four hex digits");
                            };
                            code = code * 16 + d;
                        }
                        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                        bytes.extend_from_slice(c.to_string().as_bytes());
                    }
                    _ => return self.err(here, "unknown escape in a string"),
                },
                Some(b) => bytes.push(b),
            }
        }
        // The input is a &str and escapes add whole characters: still UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn token(&mut self) -> &'a str {
        let start = self.i;
        while let Some(b) = self.peek() {
            if is_delimiter(b) {
                break;
            }
            self.bump();
        }
        let src: &'a [u8] = self.src;
        // Tokens end at ASCII delimiters, so they split the text at character
        // boundaries.
        std::str::from_utf8(&src[start..self.i]).expect("a token of a str is UTF-8")
    }

    fn character(&mut self, at: Pos) -> Result<String, EdnError> {
        self.bump();
        // `\(` and friends: one character that would otherwise delimit.
        let first = self.peek();
        match first {
            None => self.err(at, "\\ ends the text"),
            Some(b) if is_delimiter(b) && !b.is_ascii_whitespace() => {
                self.bump();
                Ok(format!("\\{}", b as char))
            }
            Some(b) if b.is_ascii_whitespace() => self.err(at, "\\ followed by a space"),
            Some(_) => {
                let t = self.token();
                Ok(format!("\\{t}"))
            }
        }
    }

    /// After `#`: a set, a symbolic value, or a tagged literal.
    fn dispatch(&mut self, at: Pos) -> Result<Edn, EdnError> {
        match self.peek2() {
            Some(b'{') => {
                self.bump();
                Ok(Edn::Set(self.items(at, b'}')?))
            }
            Some(b'#') => {
                self.bump();
                self.bump();
                let t = self.token();
                match t {
                    "Inf" | "-Inf" | "NaN" => Ok(Edn::Number(format!("##{t}"))),
                    _ => self.err(at, format!("##{t} is not ##Inf, ##-Inf or ##NaN")),
                }
            }
            Some(b) if b.is_ascii_alphabetic() => {
                self.bump();
                let tag = self.token().to_string();
                self.skip_space()?;
                if matches!(self.peek(), None | Some(b')' | b']' | b'}')) {
                    return self.err(at, format!("#{tag} tags nothing"));
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return self.err(at, format!("collections nest deeper than {MAX_DEPTH}"));
                }
                let inner = self.form()?;
                self.depth -= 1;
                Ok(Edn::Tagged(tag, Box::new(inner)))
            }
            _ => self.err(
                at,
                "# must start a set #{...}, a tag #inst, or a discard #_",
            ),
        }
    }

    fn atom(&mut self, at: Pos) -> Result<Edn, EdnError> {
        let t = self.token();
        if t.is_empty() {
            let c = self.peek().map_or(' ', |b| b as char);
            return self.err(at, format!("unexpected {c:?}"));
        }
        Ok(match t {
            "nil" => Edn::Nil,
            "true" => Edn::Bool(true),
            "false" => Edn::Bool(false),
            _ if t.starts_with(':') => {
                if t == ":" || t == "::" {
                    return self.err(at, "a keyword needs a name after the colon");
                }
                Edn::Keyword(t[1..].to_string())
            }
            _ if starts_number(t) => {
                if !is_number(t) {
                    return self.err(at, format!("{t:?} is not a number"));
                }
                Edn::Number(t.to_string())
            }
            _ => Edn::Symbol(t.to_string()),
        })
    }
}

fn starts_number(t: &str) -> bool {
    let b = t.as_bytes();
    b[0].is_ascii_digit() || (matches!(b[0], b'+' | b'-') && b.len() > 1 && b[1].is_ascii_digit())
}

/// Integers (`3`, `-3`, `3N`, `0x1F`), floats (`1.5`, `1e3`, `1.5M`), ratios (`1/2`).
fn is_number(t: &str) -> bool {
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    if let Some((a, b)) = body.split_once('/') {
        return digits(a) && digits(b);
    }
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit());
    }
    let body = body.strip_suffix(['N', 'M']).unwrap_or(body);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => digits(a) && (b.is_empty() || digits(b)),
        None => digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exp_ok
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Edn {
        let forms = read_all(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(forms.len(), 1, "{text}");
        forms.into_iter().next().unwrap().value
    }

    fn error(text: &str) -> String {
        read_all(text).expect_err(text).to_string()
    }

    #[test]
    fn scalars() {
        assert_eq!(one("nil"), Edn::Nil);
        assert_eq!(one("true"), Edn::Bool(true));
        assert_eq!(one("false"), Edn::Bool(false));
        for n in [
            "3", "-3", "+3", "3N", "1.5", "1.5M", "1e3", "-2.5E-3", "1/2", "0x1F", "1.",
        ] {
            assert_eq!(one(n), Edn::Number(n.into()), "{n}");
        }
        assert_eq!(one("##Inf"), Edn::Number("##Inf".into()));
        assert_eq!(one("3").integer(), Some(3));
        assert_eq!(one("3N").integer(), Some(3));
        assert_eq!(one("1.5").integer(), None);
        assert_eq!(one(":ok"), Edn::Keyword("ok".into()));
        assert_eq!(
            one(":jepsen.os/noop"),
            Edn::Keyword("jepsen.os/noop".into())
        );
        assert_eq!(one("foo/bar"), Edn::Symbol("foo/bar".into()));
        assert_eq!(one("-"), Edn::Symbol("-".into()));
        assert_eq!(one("\\a"), Edn::Char("\\a".into()));
        assert_eq!(one("\\newline"), Edn::Char("\\newline".into()));
        assert_eq!(one("\\("), Edn::Char("\\(".into()));
    }

    #[test]
    fn strings_unescape() {
        assert_eq!(one(r#""a\"b\\c\nd""#), Edn::Str("a\"b\\c\nd".into()));
        assert_eq!(one(r#""\u00e9t\u00e9""#), Edn::Str("été".into()));
        assert_eq!(one("\"multi\nline\""), Edn::Str("multi\nline".into()));
        assert_eq!(one("\"ünïcode\"").to_string(), "\"ünïcode\"");
    }

    #[test]
    fn collections_and_their_text() {
        let m = one("{:process 0, :type :invoke, :f :cas, :value [1 2]}");
        assert_eq!(m.get("process").unwrap().value.integer(), Some(0));
        assert_eq!(m.get("type").unwrap().value.keyword(), Some("invoke"));
        assert_eq!(m.get("value").unwrap().value.sequence().unwrap().len(), 2);
        assert!(m.get("time").is_none());
        assert_eq!(
            m.to_string(),
            "{:process 0, :type :invoke, :f :cas, :value [1 2]}"
        );
        assert_eq!(one("(1 (2) [3])").to_string(), "(1 (2) [3])");
        assert_eq!(one("#{:a :b}").to_string(), "#{:a :b}");
        assert_eq!(one("{}").to_string(), "{}");
        assert_eq!(
            one("#inst \"2024-01-01T00:00:00Z\"").to_string(),
            "#inst \"2024-01-01T00:00:00Z\""
        );
        // Whatever an :error field holds is read and can be ignored.
        let m = one(
            "{:error #object[java.net.SocketTimeoutException 0x5e \"Read timed out\"], :ok? false}",
        );
        assert!(matches!(m.get("error").unwrap().value, Edn::Tagged(..)));
    }

    #[test]
    fn comments_commas_and_discards_are_space() {
        let forms = read_all("; a comment\n{:a 1} ,, #_ {:skipped [1 2]} {:b #_3 2}\n").unwrap();
        assert_eq!(forms.len(), 2);
        assert_eq!(forms[1].value.to_string(), "{:b 2}");
        assert_eq!(forms[1].at, Pos { line: 2, col: 31 });
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let forms = read_all("{:a 1}\n  [é é :x]").unwrap();
        let v = forms[1].value.sequence().unwrap();
        assert_eq!(forms[1].at, Pos { line: 2, col: 3 });
        assert_eq!(v[2].at, Pos { line: 2, col: 8 });
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            error("{:a 1}\n{:b [1 2}"),
            "2:9: } where ] (opened at 2:5) should close"
        );
        assert_eq!(
            error("{:a 1}\n  {:b [1 2]"),
            "2:3: this { is never closed (expected })"
        );
        assert_eq!(error("{:a 1 :b}"), "1:7: this map key has no value");
        assert_eq!(error("\n\"abc"), "2:1: this string is never closed");
        assert_eq!(error("[1 2] )"), "1:7: ) closes nothing");
        assert_eq!(error("{:v 12ab}"), "1:5: \"12ab\" is not a number");
        assert_eq!(error("#foo"), "1:1: #foo tags nothing");
        assert_eq!(error("[#_]"), "1:2: #_ discards nothing");
        assert_eq!(error("##Foo"), "1:1: ##Foo is not ##Inf, ##-Inf or ##NaN");
        assert_eq!(
            error("# 1"),
            "1:1: # must start a set #{...}, a tag #inst, or a discard #_"
        );
        assert_eq!(error(":"), "1:1: a keyword needs a name after the colon");
        assert_eq!(error("\"a\\qb\""), "1:3: unknown escape in a string");
        let deep = "[".repeat(10_000);
        assert!(error(&deep).contains("nest deeper"), "no stack overflow");
        let tags = "#a ".repeat(10_000) + "1";
        assert!(error(&tags).contains("nest deeper"));
    }
}
