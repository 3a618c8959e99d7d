//! One-pass JSON readers for the hot path of a few sources, with `serde_json` as the
//! reference they fall back to.
//!
//! * [`Plain`] reads ordinary JSON text (the SNS envelope, a Datadog payload).
//! * [`Nested`] reads JSON text that is itself the still-escaped content of a JSON
//!   string literal — CloudWatch's alarm inside the SNS envelope's `Message` — straight
//!   from the outer text: an outer `\"` is an inner quote, an outer `\\` an inner
//!   backslash, and so on. The usual route unescapes the literal into a buffer and
//!   parses that again (two passes plus a copy).
//!
//! Strings without escapes are borrowed from the input as they are.
//!
//! The readers are deliberately partial. Every method answers `None` ("decline") both
//! for input that `serde_json` would reject and for what they do not handle (a `\u`
//! escape, nesting deeper than [`MAX_DEPTH`], numbers other than integers). A caller
//! then takes its general route (`serde_json`), which gives the results and error
//! messages it always gave: a reader only ever answers where that route would answer
//! the same (each source's tests check this against its general route on fixtures and
//! on generated and mutated input).

use std::borrow::Cow;

/// Containers nested deeper than this are declined (`serde_json` itself stops at 128).
pub const MAX_DEPTH: u32 = 64;

/// A cursor over JSON text: plain (`ESCAPED = false`, see [`Plain`]) or held escaped
/// inside a string literal (`ESCAPED = true`, see [`Nested`]).
#[derive(Debug, Clone)]
pub struct Reader<'a, const ESCAPED: bool> {
    s: &'a str,
    i: usize,
    depth: u32,
    /// Whitespace bytes skipped so far (between tokens, not inside strings).
    skipped_ws: usize,
}

/// A reader over plain JSON text.
pub type Plain<'a> = Reader<'a, false>;

/// Where a value read by [`Plain::spanned`] is in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Its bytes, from its first byte to just past its last (no whitespace around).
    pub range: std::ops::Range<usize>,
    /// True when the reader skipped no whitespace inside it (it is compact JSON).
    pub compact: bool,
}

/// A reader over JSON text held, still escaped, in a string literal.
pub type Nested<'a> = Reader<'a, true>;

impl<'a> Plain<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Reader {
            s: text,
            i: 0,
            depth: 0,
            skipped_ws: 0,
        }
    }

    /// At a string literal: a [`Nested`] reader over its content. Read the inner value
    /// with it, then hand it back to [`Plain::resume`].
    pub fn nested(&mut self) -> Option<Nested<'a>> {
        self.eat(b'"')?;
        Some(Reader {
            s: self.s,
            i: self.i,
            depth: 0,
            skipped_ws: 0,
        })
    }

    /// Continues after the literal that `inner` (from [`Plain::nested`]) was reading;
    /// it must have reached the literal's closing quote (only inner whitespace left).
    /// Returns the literal's span in the text, quotes included.
    pub fn resume(&mut self, mut inner: Nested<'a>) -> Option<std::ops::Range<usize>> {
        let start = self.i.checked_sub(1)?;
        if !inner.at_end() || self.s.as_bytes().get(inner.i) != Some(&b'"') {
            return None;
        }
        self.i = inner.i + 1;
        Some(start..self.i)
    }

    /// Reads the next value with `read` and returns it with its [`Span`] in the text.
    pub fn spanned<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<(T, Span)> {
        let start = self.value_start()?;
        let ws = self.skipped_ws;
        let value = read(self)?;
        Some((
            value,
            Span {
                range: start..self.i,
                compact: self.skipped_ws == ws,
            },
        ))
    }

    /// The text of a non-negative integer that fits `u64` (which `serde_json` hands on
    /// as a `u64`); `None` for any other number.
    pub fn integer(&mut self) -> Option<&'a str> {
        self.peek_ws()?;
        let start = self.i;
        self.number()?;
        let text = &self.s[start..self.i];
        text.parse::<u64>().is_ok().then_some(text)
    }
}

impl<'a> Nested<'a> {
    /// A reader over `literal`, a JSON string literal with its quotes exactly as
    /// `serde_json` validated it (the text of a `&RawValue` holding a string).
    /// `None` when `literal` is not quoted.
    pub fn of_literal(literal: &'a str) -> Option<Self> {
        let s = literal.strip_prefix('"')?.strip_suffix('"')?;
        Some(Reader {
            s,
            i: 0,
            depth: 0,
            skipped_ws: 0,
        })
    }
}

impl<'a, const ESCAPED: bool> Reader<'a, ESCAPED> {
    /// True when only whitespace is left (for [`Nested`]: before the literal's end).
    pub fn at_end(&mut self) -> bool {
        let none_left = self.peek_ws().is_none();
        match self.s.as_bytes().get(self.i) {
            None => none_left,
            Some(&c) => ESCAPED && none_left && c == b'"',
        }
    }

    /// The next byte of the JSON text and how many bytes of the input encode it,
    /// without consuming it. `None` at the end; for [`Nested`] also at the literal's
    /// end (its closing quote), at an outer control character (invalid JSON) and at
    /// outer escapes it declines (`\u`).
    #[inline]
    fn peek(&self) -> Option<(u8, usize)> {
        let b = self.s.as_bytes();
        let c = *b.get(self.i)?;
        if !ESCAPED {
            return Some((c, 1));
        }
        if c != b'\\' {
            return (c >= 0x20 && c != b'"').then_some((c, 1));
        }
        let decoded = match *b.get(self.i + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 0x08,
            b'f' => 0x0c,
            _ => return None,
        };
        Some((decoded, 2))
    }

    /// Skips whitespace and peeks at the next byte.
    #[inline]
    fn peek_ws(&mut self) -> Option<(u8, usize)> {
        loop {
            let (c, n) = self.peek()?;
            match c {
                b' ' | b'\n' | b'\t' | b'\r' => {
                    self.i += n;
                    self.skipped_ws += 1;
                }
                _ => return Some((c, n)),
            }
        }
    }

    /// Consumes the byte `want` (after whitespace).
    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        let (c, n) = self.peek_ws()?;
        (c == want).then(|| self.i += n)
    }

    /// Skips whitespace and returns the offset of the next value in the text (where a
    /// `serde_json` `RawValue` of it would start).
    pub fn value_start(&mut self) -> Option<usize> {
        self.peek_ws()?;
        Some(self.i)
    }

    /// The offset just past what was read so far.
    pub fn offset(&self) -> usize {
        self.i
    }

    /// The next byte after whitespace, not consumed.
    pub fn next_byte(&mut self) -> Option<u8> {
        self.peek_ws().map(|(c, _)| c)
    }

    /// True, consuming it, when the next token is `null`.
    pub fn null(&mut self) -> Option<bool> {
        let (c, _) = self.peek_ws()?;
        if c != b'n' {
            return Some(false);
        }
        self.literal(b"null")?;
        Some(true)
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> Option<bool> {
        match self.peek_ws()?.0 {
            b't' => self.literal(b"true").map(|_| true),
            b'f' => self.literal(b"false").map(|_| false),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        for &w in word {
            let (c, n) = self.peek()?;
            if c != w {
                return None;
            }
            self.i += n;
        }
        Some(())
    }

    /// A string: its text, borrowed when it holds no escapes.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let b = self.s.as_bytes();
        let mut owned: Option<String> = None;
        let mut seg = self.i;
        loop {
            // String content runs up to the next quote, backslash or control byte.
            let j = self.i + find_special(&b[self.i..])?;
            if !ESCAPED {
                match b[j] {
                    b'"' => {
                        self.i = j + 1;
                        return Some(finish(owned, &self.s[seg..j]));
                    }
                    b'\\' => {
                        let ch = unescape(*b.get(j + 1)?)?;
                        let o = owned.get_or_insert_with(String::new);
                        o.push_str(&self.s[seg..j]);
                        o.push(ch);
                        self.i = j + 2;
                        seg = self.i;
                        continue;
                    }
                    _ => return None,
                }
            }
            // Escaped: inner content is outer text up to the next outer backslash; an
            // outer quote there ends the literal inside an inner string and an outer
            // control character is invalid JSON: `peek` declines both.
            if owned.is_none() && b[j] == b'\\' && b.get(j + 1) == Some(&b'"') {
                // The usual case: no escapes, ended by an outer `\"`.
                self.i = j + 2;
                return Some(Cow::Borrowed(&self.s[seg..j]));
            }
            self.i = j;
            let (c, n) = self.peek()?;
            match c {
                b'"' => {
                    self.i += n;
                    return Some(finish(owned, &self.s[seg..j]));
                }
                b'\\' => {
                    self.i += n;
                    let (e, m) = self.peek()?;
                    let ch = unescape(e)?;
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.s[seg..j]);
                    o.push(ch);
                    self.i += m;
                    seg = self.i;
                }
                b'/' => {
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.s[seg..j]);
                    o.push('/');
                    self.i += n;
                    seg = self.i;
                }
                // A raw control character inside an inner string: invalid JSON.
                _ => return None,
            }
        }
    }

    /// `null` → `Some(None)`, a string → `Some(Some(text))`.
    pub fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null()? {
            return Some(None);
        }
        self.string().map(Some)
    }

    fn number(&mut self) -> Option<()> {
        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        if self.byte() == Some(b'-') {
            self.i += 1;
        }
        match self.byte()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.byte() == Some(b'.') {
            self.i += 1;
            self.digits1()?;
        }
        if matches!(self.byte(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.byte(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digits1()?;
        }
        Some(())
    }

    /// The next byte when it is written as itself (no escape).
    fn byte(&self) -> Option<u8> {
        self.s
            .as_bytes()
            .get(self.i)
            .copied()
            .filter(|&c| c != b'\\')
    }

    fn digits(&mut self) {
        while matches!(self.byte(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn digits1(&mut self) -> Option<()> {
        matches!(self.byte(), Some(b'0'..=b'9')).then(|| self.digits())
    }

    /// Skips one value of any kind, checking its syntax.
    pub fn skip_value(&mut self) -> Option<()> {
        let (c, _) = self.peek_ws()?;
        match c {
            b'"' => self.string().map(drop),
            b'{' => self.object(|r, _| r.skip_value()),
            b'[' => self.array(|r| r.skip_value()),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => None,
        }
    }

    /// Reads an object, calling `field(reader, key)` with the reader positioned at
    /// each value; `field` must consume the value.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>,
    ) -> Option<()> {
        self.enter(b'{')?;
        if self.peek_ws()?.0 == b'}' {
            return self.leave(b'}');
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            let (c, n) = self.peek_ws()?;
            self.i += n;
            match c {
                b',' => {}
                b'}' => {
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Reads an array, calling `element(reader)` at each element; `element` must
    /// consume it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.enter(b'[')?;
        if self.peek_ws()?.0 == b']' {
            return self.leave(b']');
        }
        loop {
            element(self)?;
            let (c, n) = self.peek_ws()?;
            self.i += n;
            match c {
                b',' => {}
                b']' => {
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn enter(&mut self, open: u8) -> Option<()> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
        self.depth += 1;
        Some(())
    }

    fn leave(&mut self, close: u8) -> Option<()> {
        self.eat(close)?;
        self.depth -= 1;
        Some(())
    }
}

/// The character a JSON escape `\c` stands for; `None` for `\u` (declined) and
/// invalid escapes.
fn unescape(c: u8) -> Option<char> {
    Some(match c {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        _ => return None,
    })
}

fn finish<'a>(owned: Option<String>, tail: &'a str) -> Cow<'a, str> {
    match owned {
        None => Cow::Borrowed(tail),
        Some(mut o) => {
            o.push_str(tail);
            Cow::Owned(o)
        }
    }
}

/// Which fields of an object were read: serde refuses a field given twice, so the
/// readers decline it.
#[derive(Debug, Default)]
pub struct Seen(u32);

impl Seen {
    /// True when field number `bit` was read.
    pub fn has(&self, bit: u8) -> bool {
        self.0 & (1u32 << bit) != 0
    }

    /// `value`, unless field number `bit` (< 32) was already read.
    pub fn once<T>(&mut self, bit: u8, value: Option<T>) -> Option<T> {
        let mask = 1u32 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        value
    }
}

/// The index of the first byte in `b` that a JSON string cannot hold as itself — `"`,
/// `\` or a control character below 0x20 — sixteen bytes at a time (SSE2, part of
/// every x86-64 CPU), then eight.
#[cfg(target_arch = "x86_64")]
#[inline]
fn find_special(b: &[u8]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut at = 0;
    while let Some(block) = b.get(at..at + 16) {
        // SAFETY: SSE2 is part of the x86-64 baseline (always enabled on this
        // target), and `block` is 16 readable bytes (`_mm_loadu_si128` needs no
        // alignment).
        let hits = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned `c <= 0x1f`: max(c, 0x1f) == 0x1f.
            let low = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize);
        }
        at += 16;
    }
    find_special_swar(&b[at..]).map(|p| at + p)
}

/// [`find_special`] elsewhere.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn find_special(b: &[u8]) -> Option<usize> {
    find_special_swar(b)
}

/// [`find_special`], eight bytes at a time.
#[inline]
fn find_special_swar(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = LO * b'"' as u64;
    const BACKSLASH: u64 = LO * b'\\' as u64;
    const SPACE: u64 = LO * 0x20;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // For each test the lowest set bit marks its first matching byte exactly
        // (borrows only run upwards), so the union's lowest bit marks the first byte
        // matching any of them.
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let hits = zero(w ^ QUOTE) | zero(w ^ BACKSLASH) | (w.wrapping_sub(SPACE) & !w & HI);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn spans_cover_the_value_and_tell_whether_it_is_compact() {
        let text = r#" [ {"a":"x y"} , { "b" : 1 }, {"c":[1,{"d":null}]}
        ] "#;
        let mut r = Plain::new(text);
        let mut spans = Vec::new();
        r.array(|r| {
            spans.push(r.spanned(|r| r.skip_value())?.1);
            Some(())
        })
        .unwrap();
        assert!(r.at_end());
        let got: Vec<(&str, bool)> = spans
            .iter()
            .map(|s| (&text[s.range.clone()], s.compact))
            .collect();
        assert_eq!(
            got,
            [
                (r#"{"a":"x y"}"#, true),
                (r#"{ "b" : 1 }"#, false),
                (r#"{"c":[1,{"d":null}]}"#, true),
            ]
        );
    }

    /// Reads any inner value into a `serde_json::Value` with this reader (test
    /// helper: numbers are only checked, and read back by `serde_json`).
    fn read<const E: bool>(r: &mut Reader<'_, E>) -> Option<Value> {
        let (c, _) = r.peek_ws()?;
        Some(match c {
            b'"' => Value::String(r.string()?.into_owned()),
            b'{' => {
                let mut m = serde_json::Map::new();
                r.object(|r, k| {
                    let v = read(r)?;
                    m.insert(k.into_owned(), v);
                    Some(())
                })?;
                Value::Object(m)
            }
            b'[' => {
                let mut a = Vec::new();
                r.array(|r| {
                    a.push(read(r)?);
                    Some(())
                })?;
                Value::Array(a)
            }
            _ => {
                let start = r.i;
                r.skip_value()?;
                serde_json::from_str(&r.s[start..r.i]).ok()?
            }
        })
    }

    /// What the reader makes of `inner` written as a string literal, against serde_json.
    fn check(inner: &str) -> Option<Value> {
        let literal = serde_json::to_string(inner).unwrap();
        let mut r = Nested::of_literal(&literal).unwrap();
        let ours = read(&mut r).filter(|_| r.at_end());
        let theirs = serde_json::from_str::<Value>(inner).ok();
        if let Some(v) = &ours {
            assert_eq!(Some(v), theirs.as_ref(), "{inner:?}");
        }
        // The same text read plainly.
        let mut p = Plain::new(inner);
        let plain = read(&mut p).filter(|_| p.at_end());
        if let Some(v) = &plain {
            assert_eq!(Some(v), theirs.as_ref(), "plain {inner:?}");
        }
        assert_eq!(ours.is_some(), plain.is_some(), "{inner:?}");
        ours
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for ok in [
            r#"{"a": "b", "n": [1, -2.5e3, 0, true, false, null], "o": {}}"#,
            r#"  {"q": "say \"hi\" \\ back/slash\n\ttab", "e": []}  "#,
            "{\n\"x\": {\"y\": [[], [{}]]}\n}",
            r#""just a string""#,
            r#"-0.0e+1"#,
        ] {
            assert!(check(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn declines_what_serde_json_rejects_or_what_it_does_not_handle() {
        for bad in [
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": 1e}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1,}"#,
            r#"[1,]"#,
            r#"{"a": tru}"#,
            "{\"a\": \"raw\ncontrol\"}",
            r#"{"a": "\u00e9"}"#,
            r#"{"a": "x"} trailing"#,
            r#"{"a": "unterminated}"#,
            r#"{"a": "\q"}"#,
            "",
            "é",
        ] {
            assert!(check(bad).is_none(), "{bad:?}");
        }
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        assert!(check(&deep).is_none());
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let literal = serde_json::to_string(r#"{"k": "plain text"}"#).unwrap();
        let mut r = Nested::of_literal(&literal).unwrap();
        r.object(|r, k| {
            assert!(matches!(k, Cow::Borrowed("k")));
            assert!(matches!(r.string()?, Cow::Borrowed("plain text")));
            Some(())
        })
        .unwrap();
    }

    #[test]
    fn find_special_agrees_with_position() {
        let special = |c: &u8| *c == b'"' || *c == b'\\' || *c < 0x20;
        for len in 0..70 {
            for at in 0..=len {
                for (first, second) in [(b'\\', b'"'), (b'"', 0x1f), (b'\n', b'\\'), (0, 0x7f)] {
                    let mut b = vec![b'a'; len];
                    if at < len {
                        b[at] = first;
                    }
                    if at + 3 < len {
                        b[at + 3] = second;
                    }
                    if at > 0 {
                        b[at - 1] = 0x80 | first;
                    }
                    assert_eq!(find_special(&b), b.iter().position(special), "{b:?}");
                    assert_eq!(find_special_swar(&b), b.iter().position(special), "{b:?}");
                }
            }
        }
        assert_eq!(find_special("é\\".as_bytes()), Some(2));
        assert_eq!(find_special("é\u{7f} \u{80}\"".as_bytes()), Some(6));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_serde_json_on_arbitrary_text(inner in r#"[ {}\[\]:,"\\a-e0-9.+\-ntrulsfé/\n]{0,40}"#) {
            check(&inner);
        }

        #[test]
        fn agrees_with_serde_json_on_generated_documents(v in json_value()) {
            let compact = serde_json::to_string(&v).unwrap();
            proptest::prop_assert!(check(&compact).is_some() || compact.contains("\\u"));
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            proptest::prop_assert!(check(&pretty).is_some() || pretty.contains("\\u"));
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-zA-Z0-9 \"\\\\/\n\t\u{1}é]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z\"]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
