//! MessagePack to JSON ([`to_json`](super::to_json)): one pass, an
//! explicit stack of open containers.

use super::{Error, Unrepresentable, MAX_DEPTH};

/// One open array or map while transcoding to JSON.
struct Level {
    map: bool,
    /// Items (map keys and values counted apart) still to come.
    left: u64,
    /// Items in all.
    total: u64,
    /// A non-string key being read past (lossy mode): its output is dropped.
    muted: bool,
}

pub(super) struct Transcoder<'a, 'o> {
    input: &'a [u8],
    out: &'o mut Vec<u8>,
    /// Write `null` (or `""` for a key) for what has no JSON form.
    lossy: bool,
    /// The first loss, in lossy mode.
    pub(super) lost: Option<Unrepresentable>,
    /// Open levels whose output is dropped; while above 0, writes go to
    /// `trash`.
    muted: usize,
    trash: Vec<u8>,
}

impl<'a, 'o> Transcoder<'a, 'o> {
    pub(super) fn new(input: &'a [u8], out: &'o mut Vec<u8>, lossy: bool) -> Transcoder<'a, 'o> {
        Transcoder {
            input,
            out,
            lossy,
            lost: None,
            muted: 0,
            trash: Vec::new(),
        }
    }

    pub(super) fn run(&mut self) -> Result<(), Error> {
        let mut stack: Vec<Level> = Vec::new();
        loop {
            let mut key = false;
            if let Some(level) = stack.last_mut() {
                if level.left == 0 {
                    let (map, muted) = (level.map, level.muted);
                    stack.pop();
                    self.sink().push(if map { b'}' } else { b']' });
                    self.muted -= usize::from(muted);
                    if stack.is_empty() {
                        break;
                    }
                    continue;
                }
                key = level.map && level.left % 2 == 0;
                let first = level.left == level.total;
                level.left -= 1;
                if !first {
                    let sep = if level.map && !key { b':' } else { b',' };
                    self.sink().push(sep);
                }
            }
            let marker = *self.input.first().ok_or(Error::Malformed("truncated"))?;
            let opened = if key && !is_str(marker) {
                // A key JSON cannot have: in lossy mode written as "" and
                // the key itself read past, muted.
                self.lose(Unrepresentable::NonStringKey, true)?;
                self.muted += 1;
                let opened = self.value()?;
                match opened {
                    Some(mut level) => {
                        level.muted = true;
                        Some(level)
                    }
                    None => {
                        self.muted -= 1;
                        None
                    }
                }
            } else {
                self.value()?
            };
            if let Some(level) = opened {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::Malformed("nested too deep"));
                }
                stack.push(level);
            } else if stack.is_empty() {
                break;
            }
        }
        if !self.input.is_empty() {
            return Err(Error::Malformed("bytes after the value"));
        }
        Ok(())
    }

    /// Where output goes: `out`, or nowhere while muted.
    fn sink(&mut self) -> &mut Vec<u8> {
        if self.muted > 0 {
            self.trash.clear();
            &mut self.trash
        } else {
            self.out
        }
    }

    /// Reads one value's head and writes it (a whole scalar, or a
    /// container's opening bracket, returned as the new level).
    fn value(&mut self) -> Result<Option<Level>, Error> {
        let marker = self.take(1)?[0];
        match marker {
            0x00..=0x7f => self.write_num(u64::from(marker)),
            0xe0..=0xff => self.write_num(i64::from(marker as i8)),
            0xc0 => self.sink().extend_from_slice(b"null"),
            0xc2 => self.sink().extend_from_slice(b"false"),
            0xc3 => self.sink().extend_from_slice(b"true"),
            0xcc..=0xcf => {
                let v = self.uint(1 << (marker - 0xcc))?;
                self.write_num(v);
            }
            0xd0 => {
                let v = self.uint(1)? as u8 as i8;
                self.write_num(i64::from(v));
            }
            0xd1 => {
                let v = self.uint(2)? as u16 as i16;
                self.write_num(i64::from(v));
            }
            0xd2 => {
                let v = self.uint(4)? as u32 as i32;
                self.write_num(i64::from(v));
            }
            0xd3 => {
                let v = self.uint(8)? as i64;
                self.write_num(v);
            }
            0xca => {
                let v = f32::from_bits(self.uint(4)? as u32);
                self.write_float(f64::from(v))?;
            }
            0xcb => {
                let v = f64::from_bits(self.uint(8)?);
                self.write_float(v)?;
            }
            0xa0..=0xbf => self.write_str(usize::from(marker & 0x1f))?,
            0xd9..=0xdb => {
                let n = self.uint(1 << (marker - 0xd9))? as usize;
                self.write_str(n)?;
            }
            0x90..=0x9f => return Ok(Some(self.open(false, u64::from(marker & 0x0f)))),
            0xdc | 0xdd => {
                let n = self.uint(2 << (marker - 0xdc))?;
                return Ok(Some(self.open(false, n)));
            }
            0x80..=0x8f => return Ok(Some(self.open(true, u64::from(marker & 0x0f)))),
            0xde | 0xdf => {
                let n = self.uint(2 << (marker - 0xde))?;
                return Ok(Some(self.open(true, n)));
            }
            0xc4..=0xc6 => {
                let n = self.uint(1 << (marker - 0xc4))? as usize;
                self.take(n)?;
                self.lose(Unrepresentable::Binary, false)?;
            }
            0xd4..=0xd8 => {
                self.take(1 + (1 << (marker - 0xd4)))?;
                self.lose(Unrepresentable::Extension, false)?;
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (marker - 0xc7))? as usize;
                self.take(1 + n)?;
                self.lose(Unrepresentable::Extension, false)?;
            }
            0xc1 => return Err(Error::Malformed("the reserved byte 0xc1")),
        }
        Ok(None)
    }

    fn open(&mut self, map: bool, n: u64) -> Level {
        self.sink().push(if map { b'{' } else { b'[' });
        let total = if map { n * 2 } else { n };
        Level {
            map,
            left: total,
            total,
            muted: false,
        }
    }

    fn lose(&mut self, what: Unrepresentable, key: bool) -> Result<(), Error> {
        if !self.lossy {
            return Err(Error::Unrepresentable(what));
        }
        self.lost.get_or_insert(what);
        self.sink()
            .extend_from_slice(if key { &b"\"\""[..] } else { &b"null"[..] });
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let input = self.input;
        if input.len() < n {
            return Err(Error::Malformed("truncated"));
        }
        let (head, rest) = input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8).
    fn uint(&mut self, n: usize) -> Result<u64, Error> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn write_num<N: serde::Serialize>(&mut self, n: N) {
        // Writing a number to a Vec cannot fail.
        let _ = serde_json::to_writer(self.sink(), &n);
    }

    fn write_float(&mut self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return self.lose(Unrepresentable::NonFinite, false);
        }
        self.write_num(v);
        Ok(())
    }

    fn write_str(&mut self, n: usize) -> Result<(), Error> {
        let bytes = self.take(n)?;
        let s =
            std::str::from_utf8(bytes).map_err(|_| Error::Malformed("a string is not UTF-8"))?;
        // serde_json escapes quotes, backslashes and control characters.
        let _ = serde_json::to_writer(self.sink(), s);
        Ok(())
    }
}

fn is_str(marker: u8) -> bool {
    matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb)
}
