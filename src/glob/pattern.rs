//! Glob syntax and matching. A glob matches the WHOLE query string:
//!
//! * `*` matches any run of characters, including none (it crosses `.` and `/`);
//! * `?` matches exactly one character (one Unicode scalar value, however many UTF-8 bytes);
//! * `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]` match one character in (not in) the class; a `]` right
//!   after `[` (or `[!`, `[^`) is a member, as is a `-` first or last in the class;
//! * `\x` matches `x` literally, outside and inside classes.
//!
//! An unterminated class, a trailing backslash, an empty class and a reversed range (`[z-a]`) are
//! syntax errors ([`validate`]).
//!
//! Case-insensitive databases fold ASCII only: `A-Z` equal `a-z` in literals and classes (a
//! character is in a class if it, its ASCII lowercase or its ASCII uppercase is). Non-ASCII
//! characters are compared as they are (`É` does not match `é`): full Unicode case folding would
//! make matching locale-dependent and the index's byte-level anchors could no longer be exact.
//!
//! [`glob_match`] works on the stored pattern bytes of a mapped file, so it accepts any bytes: a
//! pattern that is not valid syntax matches nothing, invalid UTF-8 counts one character per bad
//! byte, and the time is at most O(pattern × text) (one backtrack point: the last `*`).

use std::fmt;

/// A syntax error in a glob, at byte `position` of the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError {
    pub position: usize,
    pub what: String,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid glob at byte {}: {}", self.position, self.what)
    }
}

impl std::error::Error for GlobError {}

/// True if `text` holds an unescaped `*`, `?` or `[`: the text is a glob, not a literal string.
pub fn has_wildcard(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'*' | b'?' | b'[' => return true,
            _ => i += 1,
        }
    }
    false
}

/// Checks the syntax of `pattern`; the error names the byte position of the offending construct.
pub fn validate(pattern: &str) -> Result<(), GlobError> {
    let p = pattern.as_bytes();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => {
                if i + 1 >= p.len() {
                    return Err(GlobError {
                        position: i,
                        what: "trailing backslash escapes nothing".into(),
                    });
                }
                i += 1 + char_len(p, i + 1);
            }
            b'[' => i = validate_class(p, i)?,
            _ => i += char_len(p, i),
        }
    }
    Ok(())
}

/// Validates the class opening at `open` (a `[`); returns the position after its `]`.
fn validate_class(p: &[u8], open: usize) -> Result<usize, GlobError> {
    let unterminated = |body_start: usize| {
        // `[]` and `[!]` read as "empty class" to a user; say so rather than "unterminated".
        let what = if p.len() == body_start + 1 && p[body_start] == b']' {
            "empty character class (a `]` right after `[` is a member; escape it as `\\]`)"
        } else {
            "unterminated character class (no closing `]`)"
        };
        GlobError {
            position: open,
            what: what.into(),
        }
    };
    let (body_start, end) = match class_bounds(p, open) {
        ClassBounds::Ok { body, end, .. } => (body.0, end),
        ClassBounds::Unterminated { body_start } => return Err(unterminated(body_start)),
    };
    if body_start + 1 == end {
        // Unreachable with the `]`-first rule, kept so the error exists if that rule changes.
        return Err(GlobError {
            position: open,
            what: "empty character class".into(),
        });
    }
    let mut i = body_start;
    let body_end = end - 1;
    while i < body_end {
        let item_pos = i;
        let (lo, next) = class_char(p, i, body_end);
        i = next;
        if i + 1 < body_end && p[i] == b'-' {
            let (hi, next) = class_char(p, i + 1, body_end);
            if hi < lo {
                return Err(GlobError {
                    position: item_pos,
                    what: format!(
                        "reversed range {}-{} in character class",
                        describe(lo),
                        describe(hi)
                    ),
                });
            }
            i = next;
        }
    }
    Ok(end)
}

fn describe(c: u32) -> String {
    match char::from_u32(c) {
        Some(ch) => format!("{ch:?}"),
        None => format!("byte {:#04x}", c.wrapping_sub(INVALID_BASE)),
    }
}

/// Code points >= this stand for single bytes that are not valid UTF-8 (`INVALID_BASE + byte`),
/// so a corrupt text still advances one "character" per bad byte.
const INVALID_BASE: u32 = 0x11_0000;

/// Decodes the character at `s[i]` (which must exist): `(code point, byte length)`. Bytes that
/// do not start a valid UTF-8 sequence decode alone as `INVALID_BASE + byte`.
#[inline]
fn decode(s: &[u8], i: usize) -> (u32, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (b0 as u32, 1);
    }
    decode_multibyte(s, i)
}

#[inline(never)]
fn decode_multibyte(s: &[u8], i: usize) -> (u32, usize) {
    let b0 = s[i];
    let invalid = (INVALID_BASE + b0 as u32, 1);
    let (len, init) = match b0 {
        0xC2..=0xDF => (2, b0 & 0x1F),
        0xE0..=0xEF => (3, b0 & 0x0F),
        0xF0..=0xF4 => (4, b0 & 0x07),
        _ => return invalid,
    };
    let Some(rest) = s.get(i + 1..i + len) else {
        return invalid;
    };
    let mut c = init as u32;
    for &b in rest {
        if b & 0xC0 != 0x80 {
            return invalid;
        }
        c = (c << 6) | (b & 0x3F) as u32;
    }
    let overlong = (len == 3 && c < 0x800) || (len == 4 && c < 0x1_0000);
    if overlong || c > 0x10_FFFF || (0xD800..=0xDFFF).contains(&c) {
        return invalid;
    }
    (c, len)
}

#[inline]
fn char_len(s: &[u8], i: usize) -> usize {
    if s[i] < 0x80 {
        1
    } else {
        decode_multibyte(s, i).1
    }
}

enum ClassBounds {
    /// `body` = (start, end) of the members; `end` = position after the closing `]`.
    Ok {
        negated: bool,
        body: (usize, usize),
        end: usize,
    },
    Unterminated {
        body_start: usize,
    },
}

/// Finds the extent of the class whose `[` is at `open`.
#[inline]
fn class_bounds(p: &[u8], open: usize) -> ClassBounds {
    let mut i = open + 1;
    let negated = matches!(p.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let body_start = i;
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    loop {
        match p.get(i) {
            None => return ClassBounds::Unterminated { body_start },
            Some(b']') => {
                return ClassBounds::Ok {
                    negated,
                    body: (body_start, i),
                    end: i + 1,
                }
            }
            Some(b'\\') => {
                if i + 1 >= p.len() {
                    return ClassBounds::Unterminated { body_start };
                }
                i += 1 + char_len(p, i + 1);
            }
            Some(_) => i += char_len(p, i),
        }
    }
}

/// One (possibly escaped) class member character at `i` (< `end`): `(code point, next i)`.
#[inline]
fn class_char(p: &[u8], i: usize, end: usize) -> (u32, usize) {
    let at = if p[i] == b'\\' && i + 1 < end {
        i + 1
    } else {
        i
    };
    let (c, n) = decode(p, at);
    (c, (at + n).min(end))
}

/// Is `c` a member of the class body `p[start..end]` (without the negation)?
fn class_contains(p: &[u8], start: usize, end: usize, c: u32, fold: bool) -> bool {
    let lower = if fold && c < 0x80 {
        (c as u8).to_ascii_lowercase() as u32
    } else {
        c
    };
    let upper = if fold && c < 0x80 {
        (c as u8).to_ascii_uppercase() as u32
    } else {
        c
    };
    let mut i = start;
    while i < end {
        let (lo, next) = class_char(p, i, end);
        i = next;
        let mut hi = lo;
        if i + 1 < end && p[i] == b'-' {
            let (h, next) = class_char(p, i + 1, end);
            hi = h;
            i = next;
        }
        let within = |x: u32| lo <= x && x <= hi;
        if within(c) || within(lower) || within(upper) {
            return true;
        }
    }
    false
}

/// One pattern element.
enum Token {
    Star,
    AnyChar,
    /// A class: members in `pattern[start..end]`.
    Class {
        negated: bool,
        start: usize,
        end: usize,
    },
    /// One literal character: `pattern[start..start + len]`.
    Literal {
        start: usize,
        len: usize,
    },
    /// Bad syntax (unterminated class, trailing backslash): the pattern matches nothing.
    Invalid,
}

/// The token at `p[i]` (which must exist) and the position after it.
#[inline(always)]
fn next_token(p: &[u8], i: usize) -> (Token, usize) {
    match p[i] {
        b'*' => (Token::Star, i + 1),
        b'?' => (Token::AnyChar, i + 1),
        b'[' => match class_bounds(p, i) {
            ClassBounds::Ok { negated, body, end } => (
                Token::Class {
                    negated,
                    start: body.0,
                    end: body.1,
                },
                end,
            ),
            ClassBounds::Unterminated { .. } => (Token::Invalid, p.len()),
        },
        b'\\' => {
            if i + 1 >= p.len() {
                (Token::Invalid, p.len())
            } else {
                let len = char_len(p, i + 1);
                (Token::Literal { start: i + 1, len }, i + 1 + len)
            }
        }
        b if b < 0x80 => (Token::Literal { start: i, len: 1 }, i + 1),
        _ => {
            let len = char_len(p, i);
            (Token::Literal { start: i, len }, i + len)
        }
    }
}

/// Does the whole `text` match `pattern`? ASCII case is ignored when `fold` is set. Never panics
/// and runs in O(pattern × text) on any bytes.
pub fn glob_match(pattern: &[u8], text: &[u8], fold: bool) -> bool {
    // The literal head and tail are compared in place, byte by byte (an escape stands for the
    // byte after it; folding leaves non-ASCII bytes alone, so bytes compare like characters);
    // only what lies between them needs the backtracking matcher: `*.evil.com` reduces to a
    // suffix comparison.
    let n = pattern.len();
    let (mut p, mut t) = (0usize, 0usize);
    while p < n {
        let mut b = pattern[p];
        match b {
            b'*' | b'?' | b'[' => break,
            b'\\' => {
                p += 1;
                match pattern.get(p) {
                    Some(&escaped) => b = escaped,
                    None => return false,
                }
            }
            _ => {}
        }
        if !text.get(t).is_some_and(|&got| byte_eq(got, b, fold)) {
            return false;
        }
        p += 1;
        t += 1;
    }
    if p == n {
        return t == text.len();
    }
    // The tail starts after the last wildcard.
    let (mut tail_start, mut tail_escapes) = (p, 0usize);
    let mut i = p;
    while i < n {
        match pattern[i] {
            b'*' | b'?' => {
                i += 1;
                (tail_start, tail_escapes) = (i, 0);
            }
            b'[' => match class_bounds(pattern, i) {
                ClassBounds::Ok { end, .. } => {
                    i = end;
                    (tail_start, tail_escapes) = (i, 0);
                }
                ClassBounds::Unterminated { .. } => return false,
            },
            b'\\' if i + 1 < n => {
                tail_escapes += 1;
                i += 2;
            }
            b'\\' => return false,
            _ => i += 1,
        }
    }
    let tail_len = n - tail_start - tail_escapes;
    let Some(middle_end) = text.len().checked_sub(tail_len).filter(|&e| e >= t) else {
        return false;
    };
    let (mut i, mut at) = (tail_start, middle_end);
    while i < n {
        if pattern[i] == b'\\' {
            i += 1;
        }
        if !byte_eq(text[at], pattern[i], fold) {
            return false;
        }
        i += 1;
        at += 1;
    }
    match_wildcards(&pattern[p..tail_start], &text[t..middle_end], fold)
}

/// `(head, tail)`: the pattern's first `head` bytes are literal (no wildcard, no escape), and so
/// are its last `tail` bytes, which follow its last wildcard (0 if an escape sits among them or
/// the pattern has no wildcard). A pattern without wildcards or escapes is all head.
pub(crate) fn literal_edges(pattern: &[u8]) -> (usize, usize) {
    let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
    let Some(head) = pattern.iter().position(special) else {
        return (pattern.len(), 0);
    };
    let mut tail_start = pattern.len();
    let mut i = head;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' => {
                i += 1;
                tail_start = i;
            }
            b'[' => match class_bounds(pattern, i) {
                ClassBounds::Ok { end, .. } => {
                    i = end;
                    tail_start = i;
                }
                ClassBounds::Unterminated { .. } => return (head, 0),
            },
            b'\\' => {
                i += 2;
                tail_start = pattern.len();
            }
            _ => i += 1,
        }
    }
    (head, pattern.len().saturating_sub(tail_start))
}

/// [`glob_match`] for a pattern whose [`literal_edges`] are known: compares the literal edges in
/// place and runs the matcher on the middle only. Edges that do not fit the pattern (corrupt
/// hints) fall back to the full matcher.
#[inline]
pub(crate) fn glob_match_split(
    pattern: &[u8],
    head: usize,
    tail: usize,
    text: &[u8],
    fold: bool,
) -> bool {
    let Some(middle_end) = pattern.len().checked_sub(tail).filter(|&e| e >= head) else {
        return glob_match(pattern, text, fold);
    };
    if text.len() < head + tail {
        return false;
    }
    let text_middle_end = text.len() - tail;
    same(&text[..head], &pattern[..head], fold)
        && same(&text[text_middle_end..], &pattern[middle_end..], fold)
        && match_middle(
            &pattern[head..middle_end],
            &text[head..text_middle_end],
            fold,
        )
}

/// Matches the part of a pattern between its literal edges. Common middles take shortcuts:
/// nothing, a lone `*`, and `*lit*lit*...*` (stars around plain literals), where taking each
/// literal at its leftmost place is always right.
#[inline]
fn match_middle(middle: &[u8], text: &[u8], fold: bool) -> bool {
    match middle {
        [] => text.is_empty(),
        [b'*'] => true,
        [b'*', inner @ .., b'*'] if !inner.iter().any(|b| matches!(b, b'?' | b'[' | b'\\')) => {
            let mut rest = text;
            for literal in inner.split(|&b| b == b'*').filter(|l| !l.is_empty()) {
                match find(rest, literal, fold) {
                    Some(at) => rest = &rest[at + literal.len()..],
                    None => return false,
                }
            }
            true
        }
        _ => match_wildcards(middle, text, fold),
    }
}

/// Leftmost position of `needle` (non-empty) in `haystack`. Candidate positions (where the
/// first byte occurs) are found eight bytes at a time.
#[inline]
fn find(haystack: &[u8], needle: &[u8], fold: bool) -> Option<usize> {
    let last = haystack.len().checked_sub(needle.len())?;
    let first = if fold {
        needle[0].to_ascii_lowercase()
    } else {
        needle[0]
    };
    let at = |i: usize| same(&haystack[i..i + needle.len()], needle, fold);
    let mut i = 0;
    while i + 8 <= haystack.len() && i <= last {
        let mut word = [0u8; 8];
        word.copy_from_slice(&haystack[i..i + 8]);
        let mut w = u64::from_le_bytes(word);
        if fold {
            w = ascii_lowercase_word(w);
        }
        let mut zeros = crate::bytes::bytes_equal_to(w, first);
        while zeros != 0 {
            let j = i + zeros.trailing_zeros() as usize / 8;
            if j > last {
                return None;
            }
            if at(j) {
                return Some(j);
            }
            zeros &= zeros - 1;
        }
        i += 8;
    }
    (i..=last).find(|&j| byte_eq(haystack[j], first, fold) && at(j))
}

/// ASCII lower-casing of 8 bytes at once: the one SWAR fold, shared with the hashes.
pub(crate) use crate::hash::fold_word as ascii_lowercase_word;

#[inline]
fn byte_eq(a: u8, b: u8, fold: bool) -> bool {
    a == b || (fold && a.eq_ignore_ascii_case(&b))
}

/// Byte-wise equality, ASCII letters folded when `fold` (non-ASCII bytes only equal
/// themselves, so this is character equality for UTF-8). Eight bytes at a time, the last word
/// overlapping the one before; shorter slices byte by byte (both beat memcmp at these sizes).
#[inline]
fn same(got: &[u8], lit: &[u8], fold: bool) -> bool {
    if got.len() != lit.len() {
        return false;
    }
    let n = got.len();
    if n < 8 {
        return got.iter().zip(lit).all(|(&a, &b)| byte_eq(a, b, fold));
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        let w = u64::from_le_bytes(w);
        if fold {
            ascii_lowercase_word(w)
        } else {
            w
        }
    };
    let mut at = 0;
    while at + 8 < n {
        if word(got, at) != word(lit, at) {
            return false;
        }
        at += 8;
    }
    word(got, n - 8) == word(lit, n - 8)
}

/// Classic matcher with one backtrack point, the last `*`: after a mismatch that star swallows
/// one more character. Earlier stars never need revisiting (the last one can absorb anything
/// they could), so the time is O(pattern × text).
fn match_wildcards(pattern: &[u8], text: &[u8], fold: bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // The last star: (pattern position after it, text position where what follows it was last
    // tried). Plain literal bytes right after the star are searched for as a whole: the star
    // only ever stops where they occur.
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            let (token, next_p) = next_token(pattern, p);
            let step = match token {
                Token::Star if next_p == pattern.len() => return true,
                Token::Star => {
                    let run = plain_run(&pattern[next_p..]);
                    let Some(at) = find_from(text, t, run, fold) else {
                        return false;
                    };
                    backtrack = Some((next_p, at));
                    p = next_p + run.len();
                    t = at + run.len();
                    continue;
                }
                Token::Invalid => return false,
                _ if t >= text.len() => None,
                Token::Literal { start, len } => text
                    .get(t..t + len)
                    .is_some_and(|got| same(got, &pattern[start..start + len], fold))
                    .then_some(len),
                Token::AnyChar => Some(char_len(text, t)),
                Token::Class {
                    negated,
                    start,
                    end,
                } => {
                    let (c, n) = decode(text, t);
                    (class_contains(pattern, start, end, c, fold) != negated).then_some(n)
                }
            };
            if let Some(n) = step {
                p = next_p;
                t += n;
                continue;
            }
        } else if t == text.len() {
            return true;
        }
        match backtrack {
            Some((star_p, star_t)) if star_t < text.len() => {
                let run = plain_run(&pattern[star_p..]);
                let Some(at) = find_from(text, star_t + char_len(text, star_t), run, fold) else {
                    return false;
                };
                backtrack = Some((star_p, at));
                p = star_p + run.len();
                t = at + run.len();
            }
            _ => return false,
        }
    }
}

/// The leading bytes of `pattern` that are plain literals (no wildcard, no escape).
#[inline]
fn plain_run(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

/// Leftmost position `>= from` where `needle` (possibly empty) occurs in `haystack`.
#[inline]
fn find_from(haystack: &[u8], from: usize, needle: &[u8], fold: bool) -> Option<usize> {
    if needle.is_empty() {
        return (from <= haystack.len()).then_some(from);
    }
    Some(from + find(haystack.get(from..)?, needle, fold)?)
}

/// A maximal run of literal characters in a glob (escapes resolved, ASCII-folded when the index
/// folds): every text the glob matches contains these bytes (folded alike), in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LiteralRun {
    pub bytes: Vec<u8>,
    /// The run starts at the start of the pattern: matching texts start with it.
    pub at_start: bool,
    /// The run ends at the end of the pattern: matching texts end with it.
    pub at_end: bool,
}

/// The literal runs of `pattern`, or `None` if it is not valid syntax.
pub(crate) fn literal_runs(pattern: &[u8], fold: bool) -> Option<Vec<LiteralRun>> {
    let mut runs = Vec::new();
    let mut current: Option<LiteralRun> = None;
    let mut i = 0;
    while i < pattern.len() {
        let (token, next) = next_token(pattern, i);
        match token {
            Token::Invalid => return None,
            Token::Literal { start, len } => {
                let run = current.get_or_insert_with(|| LiteralRun {
                    bytes: Vec::new(),
                    at_start: i == 0,
                    at_end: false,
                });
                run.bytes.extend(
                    pattern[start..start + len]
                        .iter()
                        .map(|&b| crate::hash::fold_byte(b, fold)),
                );
            }
            _ => runs.extend(current.take()),
        }
        i = next;
    }
    if let Some(mut run) = current {
        run.at_end = true;
        runs.push(run);
    }
    Some(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Exponential but obviously correct: parse into tokens over chars, then recurse.
    #[derive(Debug)]
    enum Tok {
        Star,
        Any,
        Lit(char),
        Class(bool, Vec<(char, char)>),
    }

    fn parse_oracle(p: &str) -> Option<Vec<Tok>> {
        let cs: Vec<char> = p.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            match cs[i] {
                '*' => out.push(Tok::Star),
                '?' => out.push(Tok::Any),
                '\\' => {
                    i += 1;
                    out.push(Tok::Lit(*cs.get(i)?));
                }
                '[' => {
                    i += 1;
                    let neg = matches!(cs.get(i), Some('!' | '^'));
                    if neg {
                        i += 1;
                    }
                    let mut members: Vec<char> = Vec::new();
                    let mut escaped: Vec<bool> = Vec::new();
                    let mut first = true;
                    loop {
                        let c = *cs.get(i)?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if c == '\\' {
                            i += 1;
                            members.push(*cs.get(i)?);
                            escaped.push(true);
                        } else {
                            members.push(c);
                            escaped.push(false);
                        }
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < members.len() {
                        if k + 2 < members.len() && members[k + 1] == '-' && !escaped[k + 1] {
                            ranges.push((members[k], members[k + 2]));
                            k += 3;
                        } else {
                            ranges.push((members[k], members[k]));
                            k += 1;
                        }
                    }
                    out.push(Tok::Class(neg, ranges));
                }
                c => out.push(Tok::Lit(c)),
            }
            i += 1;
        }
        Some(out)
    }

    fn oracle(toks: &[Tok], text: &[char], fold: bool) -> bool {
        let eq = |a: char, b: char| a == b || (fold && a.is_ascii() && a.eq_ignore_ascii_case(&b));
        match toks.split_first() {
            None => text.is_empty(),
            Some((Tok::Star, rest)) => (0..=text.len()).any(|k| oracle(rest, &text[k..], fold)),
            Some((tok, rest)) => {
                let Some((&c, tail)) = text.split_first() else {
                    return false;
                };
                let ok = match tok {
                    Tok::Any => true,
                    Tok::Lit(l) => eq(*l, c),
                    Tok::Class(neg, ranges) => {
                        let variants = if fold {
                            vec![c, c.to_ascii_lowercase(), c.to_ascii_uppercase()]
                        } else {
                            vec![c]
                        };
                        let inside = ranges
                            .iter()
                            .any(|&(lo, hi)| variants.iter().any(|&v| lo <= v && v <= hi));
                        inside != *neg
                    }
                    Tok::Star => unreachable!(),
                };
                ok && oracle(rest, tail, fold)
            }
        }
    }

    fn m(p: &str, t: &str) -> bool {
        glob_match(p.as_bytes(), t.as_bytes(), false)
    }

    #[test]
    fn basic_semantics() {
        assert!(m("*.evil.com", "a.b.evil.com"));
        assert!(m("*.evil.com", ".evil.com"));
        assert!(!m("*.evil.com", "evil.com"));
        assert!(m("*", ""));
        assert!(m("*", "a/b.c"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("x?z.com", "xyz.com"));
        assert!(!m("x?z.com", "xz.com"));
        assert!(m("host[0-9][0-9].evil.com", "host42.evil.com"));
        assert!(!m("host[0-9][0-9].evil.com", "host4x.evil.com"));
        assert!(m("[!a-z]", "5"));
        assert!(!m("[^a-z]", "q"));
        assert!(m("[]a]", "]"));
        assert!(m("[]a]", "a"));
        assert!(m("[!]]", "x"));
        assert!(!m("[!]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[-a]", "-"));
        assert!(m("[\\]]", "]"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("[\\!a]", "!"));
        assert!(m("a\\[b", "a[b"));
    }

    #[test]
    fn question_mark_is_one_scalar_value() {
        assert!(m("?", "é"));
        assert!(m("?", "€"));
        assert!(m("?", "😀"));
        assert!(!m("??", "€"));
        assert!(!m("*??", "€"));
        assert!(m("a?c", "a😀c"));
        assert!(m("[à-ü]", "é"));
        assert!(m("[!a]", "é"));
        assert!(m("*é", "café"));
    }

    #[test]
    fn case_folding_is_ascii_only() {
        let f = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes(), true);
        assert!(f("*.EVIL.com", "www.evil.COM"));
        assert!(f("[a-c]", "B"));
        assert!(f("[A-C]", "b"));
        assert!(!f("[!a-c]", "B"));
        assert!(f("\\A", "a"));
        assert!(!f("É", "é"));
        assert!(!m("*.EVIL.com", "www.evil.com"));
    }

    #[test]
    fn syntax_errors_name_their_position() {
        let err = |p: &str| validate(p).unwrap_err();
        assert_eq!(err("ab[cd").position, 2);
        assert!(err("ab[cd").what.contains("unterminated"));
        assert_eq!(err("abc\\").position, 3);
        assert!(err("abc\\").what.contains("backslash"));
        assert_eq!(err("x[]").position, 1);
        assert!(err("x[]").what.contains("empty"));
        assert_eq!(err("[!]").position, 0);
        assert_eq!(err("a[a-bz-a]").position, 5);
        assert!(err("a[a-bz-a]").what.contains("reversed"));
        assert_eq!(err("[\\").position, 0);
        for ok in [
            "", "*", "[]a]", "[!]a]", "[a-]", "[\\]-a]", "\\[", "[é-ü]", "a[-]b",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            err("[z-a]").to_string(),
            "invalid glob at byte 1: reversed range 'z'-'a' in character class"
        );
    }

    #[test]
    fn invalid_patterns_match_nothing() {
        assert!(!m("a[bc", "a[bc"));
        assert!(!m("*\\", "x\\"));
    }

    #[test]
    fn has_wildcard_ignores_escapes() {
        assert!(has_wildcard("*.com"));
        assert!(has_wildcard("a?"));
        assert!(has_wildcard("a[b]"));
        assert!(!has_wildcard("a\\*b"));
        assert!(!has_wildcard("evil.com"));
        assert!(has_wildcard("\\\\*"));
        assert!(!has_wildcard("x\\"));
    }

    #[test]
    fn literal_runs_resolve_escapes() {
        let runs = literal_runs(b"Ab\\*c*d?EF", true).unwrap();
        assert_eq!(
            runs,
            vec![
                LiteralRun {
                    bytes: b"ab*c".to_vec(),
                    at_start: true,
                    at_end: false
                },
                LiteralRun {
                    bytes: b"d".to_vec(),
                    at_start: false,
                    at_end: false
                },
                LiteralRun {
                    bytes: b"ef".to_vec(),
                    at_start: false,
                    at_end: true
                },
            ]
        );
        assert_eq!(literal_runs(b"*", false).unwrap(), vec![]);
        assert!(literal_runs(b"[a", false).is_none());
    }

    #[test]
    fn long_inputs_stay_fast() {
        let text = "a".repeat(5000);
        let pat = format!("{}b", "*a".repeat(200));
        let start = std::time::Instant::now();
        assert!(!m(&pat, &text));
        assert!(start.elapsed().as_secs() < 5);
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            4 => prop::sample::select(vec!["a", "b", "A", "é", ".", "-", "]", "!"]).prop_map(String::from),
            2 => Just("*".to_string()),
            2 => Just("?".to_string()),
            1 => prop::sample::select(vec!["\\*", "\\?", "\\[", "\\\\", "\\a", "\\]"]).prop_map(String::from),
            2 => (any::<bool>(), prop::collection::vec(
                prop::sample::select(vec!["a", "b", "B", "é", "a-b", "A-Z", "-", "\\]", "]", "!", "^", "a-é"]), 1..4))
                .prop_map(|(neg, items)| format!("[{}{}]", if neg { "!" } else { "" }, items.concat())),
        ];
        prop::collection::vec(atom, 0..8).prop_map(|v| v.concat())
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a', 'b', 'A', 'B', 'é', 'É', '.', '-', ']', '*', '€', 'z',
            ]),
            0..10,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn same_is_bytewise_equality(
            a in prop::collection::vec(prop::sample::select(b"aAzZ@[`{.\xc3\xa9".to_vec()), 0..40),
            flips in prop::collection::vec(any::<bool>(), 40),
            fold in any::<bool>(),
        ) {
            // b: a with some letters' case (or a byte) changed.
            let b: Vec<u8> = a.iter().zip(&flips).map(|(&x, &f)| if f { x ^ 0x20 } else { x }).collect();
            let bytewise = a.iter().zip(&b).all(|(&x, &y)| byte_eq(x, y, fold));
            prop_assert_eq!(same(&a, &b, fold), bytewise);
            prop_assert!(!same(&a, &b[..b.len().saturating_sub(1)], fold) || a.is_empty());
        }

        #[test]
        fn find_agrees_with_naive(
            hay in prop::collection::vec(prop::sample::select(vec![b'a', b'A', b'b', 0xC3, 0xA9, 0x00, 0x80, b'.']), 0..40),
            needle in prop::collection::vec(prop::sample::select(vec![b'a', b'A', b'b', 0xC3, 0xA9, 0x00, 0x80, b'.']), 1..4),
            fold in any::<bool>(),
        ) {
            let naive = (0..(hay.len() + 1).saturating_sub(needle.len()))
                .find(|&i| same(&hay[i..i + needle.len()], &needle, fold));
            prop_assert_eq!(find(&hay, &needle, fold), naive);
        }

        #[test]
        fn split_matcher_agrees(p in pattern_strategy(), t in text_strategy(), fold in any::<bool>()) {
            let (head, tail) = literal_edges(p.as_bytes());
            prop_assert!(head + tail <= p.len());
            prop_assert_eq!(
                glob_match_split(p.as_bytes(), head, tail, t.as_bytes(), fold),
                glob_match(p.as_bytes(), t.as_bytes(), fold),
                "pattern {:?} text {:?} edges {:?}", p, t, (head, tail)
            );
        }

        #[test]
        fn matcher_agrees_with_oracle(p in pattern_strategy(), t in text_strategy(), fold in any::<bool>()) {
            let valid = validate(&p).is_ok();
            let parsed = parse_oracle(&p);
            let reversed = parsed.as_ref().is_some_and(|toks| toks.iter().any(|t| {
                matches!(t, Tok::Class(_, r) if r.iter().any(|(lo, hi)| lo > hi))
            }));
            prop_assert_eq!(valid, parsed.is_some() && !reversed, "validity of {:?}", p);
            let got = glob_match(p.as_bytes(), t.as_bytes(), fold);
            match parsed {
                Some(toks) if valid => {
                    let chars: Vec<char> = t.chars().collect();
                    prop_assert_eq!(got, oracle(&toks, &chars, fold), "pattern {:?} text {:?} fold {}", p, t, fold);
                }
                // Unterminated classes and trailing backslashes match nothing.
                None => prop_assert!(!got),
                _ => {}
            }
        }

        #[test]
        fn self_match_of_escaped_literal(t in text_strategy(), fold in any::<bool>()) {
            let mut p = String::new();
            for c in t.chars() {
                if "*?[]\\".contains(c) { p.push('\\'); }
                p.push(c);
            }
            prop_assert!(validate(&p).is_ok());
            prop_assert!(!has_wildcard(&p));
            prop_assert!(glob_match(p.as_bytes(), t.as_bytes(), fold));
        }

        #[test]
        fn any_bytes_never_panic(p in prop::collection::vec(any::<u8>(), 0..24), t in prop::collection::vec(any::<u8>(), 0..24), fold in any::<bool>()) {
            let _ = glob_match(&p, &t, fold);
            let _ = literal_runs(&p, fold);
        }
    }
}
