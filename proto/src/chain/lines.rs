//! A chain file's lines, split exactly as Python's `str.splitlines()`
//! (which pipelock-verify uses): the verifier, tail recovery and the CLI
//! all read a file through [`lines`], so they never disagree on where one
//! entry ends. A line holding a raw U+0085, U+2028 or U+2029 (valid inside a
//! JSON string) is broken there too.

/// One line of a chain file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: usize,
    /// Its text, without the line break.
    pub text: &'a str,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its line break (or the end of the text when
    /// the last line has none).
    pub end: usize,
    /// Whether a line break ends it.
    pub terminated: bool,
}

impl Line<'_> {
    /// True for a line with nothing but whitespace: no entry.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// The lines of `text`.
pub fn lines(text: &str) -> Lines<'_> {
    Lines {
        text,
        pos: 0,
        number: 0,
    }
}

/// The entries of `text`: its lines that are not blank.
pub fn entries(text: &str) -> impl Iterator<Item = Line<'_>> {
    lines(text).filter(|l| !l.is_blank())
}

/// Splits `text` into its lines' texts.
pub fn split_lines(text: &str) -> Vec<&str> {
    lines(text).map(|l| l.text).collect()
}

/// Iterator over a text's lines; see [`lines`].
#[derive(Clone, Debug)]
pub struct Lines<'a> {
    text: &'a str,
    pos: usize,
    number: usize,
}

fn is_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.text.get(self.pos..).filter(|r| !r.is_empty())?;
        let start = self.pos;
        self.number += 1;
        let Some((i, c)) = rest.char_indices().find(|&(_, c)| is_break(c)) else {
            self.pos = self.text.len();
            return Some(Line {
                number: self.number,
                text: rest,
                start,
                end: self.text.len(),
                terminated: false,
            });
        };
        let mut end = start + i + c.len_utf8();
        if c == '\r' && rest[i + 1..].starts_with('\n') {
            end += 1;
        }
        self.pos = end;
        Some(Line {
            number: self.number,
            text: &rest[..i],
            start,
            end,
            terminated: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{lines, split_lines};

    #[test]
    fn lines_split_like_python_splitlines() {
        assert_eq!(split_lines("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(
            split_lines("a\u{85}b\u{2028}c\u{2029}d\u{0b}e"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(split_lines("a\n\nb\n"), ["a", "", "b"]);
        assert_eq!(split_lines(""), Vec::<&str>::new());
    }

    #[test]
    fn lines_know_their_numbers_and_byte_offsets() {
        let text = "ab\r\n\u{2028}c\nd";
        let got: Vec<_> = lines(text)
            .map(|l| (l.number, l.text, l.start, l.end, l.terminated))
            .collect();
        assert_eq!(
            got,
            [
                (1, "ab", 0, 4, true),
                (2, "", 4, 7, true),
                (3, "c", 7, 9, true),
                (4, "d", 9, 10, false)
            ]
        );
        for l in lines(text) {
            assert_eq!(&text[l.start..l.start + l.text.len()], l.text);
        }
    }
}
