//! A fast reader for the usual shape of a JSON infer request: `id`, `inputs` with `name`,
//! `shape`, `datatype` and numeric `data`, and `outputs` by name.
//!
//! Reading 784 pixels through serde's visitor costs more than the rest of the request path
//! together; this walks the bytes once and writes the numbers straight into the `f32` buffer
//! the batch is built from. It only accepts what it fully understands: anything else (string
//! escapes, `parameters`, an unknown or repeated key, trailing bytes, malformed JSON) gives
//! `None`, and the caller reads the body with serde instead, which also words the errors.

use super::tensor::{Flat, InferInput, InferRequest, RequestedOutput};

/// Deepest nesting of `data` read here; deeper goes to serde, whose recursion limit refuses it
/// (a body of 16 MiB of `[` must not overflow the stack).
const MAX_DEPTH: usize = 32;

/// The request, or `None` when the serde reader must decide.
pub fn parse(body: &[u8]) -> Option<InferRequest> {
    let mut cursor = Cursor { bytes: body, at: 0 };
    let request = cursor.request()?;
    cursor.skip_space();
    (cursor.at == body.len()).then_some(request)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn request(&mut self) -> Option<InferRequest> {
        let (mut id, mut inputs, mut outputs) = (None, None, None);
        self.object(|c, key| match key {
            "id" if id.is_none() => c.string().map(|s| id = Some(s.to_owned())),
            "inputs" if inputs.is_none() => c.list(Self::input).map(|v| inputs = Some(v)),
            "outputs" if outputs.is_none() => c.list(Self::output).map(|v| outputs = Some(v)),
            _ => None,
        })?;
        Some(InferRequest {
            id,
            parameters: None,
            inputs: inputs?,
            outputs,
        })
    }

    fn input(&mut self) -> Option<InferInput> {
        let (mut name, mut shape, mut datatype, mut data) = (None, None, None, None);
        self.object(|c, key| match key {
            "name" if name.is_none() => c.string().map(|s| name = Some(s.to_owned())),
            "datatype" if datatype.is_none() => c.string().map(|s| datatype = Some(s.to_owned())),
            "shape" if shape.is_none() => c.list(Self::integer).map(|v| shape = Some(v)),
            "data" if data.is_none() => {
                let mut values = Vec::with_capacity(
                    shape
                        .as_ref()
                        .map_or(0, |s: &Vec<i64>| s.iter().product::<i64>().clamp(0, 1 << 20) as usize),
                );
                c.numbers(&mut values, MAX_DEPTH).map(|()| data = Some(Flat(values)))
            }
            _ => None,
        })?;
        Some(InferInput {
            name: name?,
            shape: shape?,
            datatype: datatype?,
            parameters: None,
            data,
        })
    }

    fn output(&mut self) -> Option<RequestedOutput> {
        let mut name = None;
        self.object(|c, key| match key {
            "name" if name.is_none() => c.string().map(|s| name = Some(s.to_owned())),
            _ => None,
        })?;
        Some(RequestedOutput {
            name: name?,
            parameters: None,
        })
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-space byte, consumed when it is `byte`.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.at).copied()
    }

    /// `{ "key": value, … }`, each value read by `field`.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            field(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// `[item, …]`.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(items);
        }
        loop {
            items.push(item(self)?);
            if self.eat(b']') {
                return Some(items);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A string without escapes or control characters (anything else is left to serde).
    fn string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        let length = self.bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.at = start + length;
        if !self.eat(b'"') {
            return None;
        }
        std::str::from_utf8(&self.bytes[start..start + length]).ok()
    }

    /// A number or a nested array of numbers (at most `depth` deep), appended row-major.
    fn numbers(&mut self, out: &mut Vec<f32>, depth: usize) -> Option<()> {
        if self.peek()? != b'[' {
            out.push(self.number()? as f32);
            return Some(());
        }
        let depth = depth.checked_sub(1)?;
        self.at += 1;
        if self.eat(b']') {
            return Some(());
        }
        if self.peek()? != b'[' {
            // A row of numbers, the usual innermost array: one tight loop, no recursion.
            loop {
                out.push(self.number()? as f32);
                match self.bytes.get(self.at) {
                    Some(b',') => self.at += 1,
                    Some(b']') => {
                        self.at += 1;
                        return Some(());
                    }
                    _ if self.eat(b']') => return Some(()),
                    _ if self.eat(b',') => {}
                    _ => return None,
                }
            }
        }
        loop {
            self.numbers(out, depth)?;
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// An integer written without fraction or exponent (serde refuses `1.0` for an `i64`),
    /// exact in `f64`; anything else is left to serde.
    fn integer(&mut self) -> Option<i64> {
        self.skip_space();
        let start = self.at;
        let value = self.number()?;
        let plain = !self.bytes[start..self.at]
            .iter()
            .any(|b| matches!(b, b'.' | b'e' | b'E'));
        (plain && value.abs() < (1u64 << 53) as f64).then_some(value as i64)
    }

    /// One JSON number, as the nearest `f64` (what serde gives). The usual cases: up to 2^53
    /// with a decimal exponent within ±22 (mantissa and power of ten both exact in `f64`) take
    /// one correctly rounded multiplication or division (Clinger's fast path); up to 19
    /// significant digits (as Python's `json` writes a float32 widened to a double, e.g.
    /// `0.14509804546833038`) with an exponent in -22..=19 are rounded exactly in 128-bit
    /// integers ([`nearest_wide`]); anything else goes to the standard library's parser.
    fn number(&mut self) -> Option<f64> {
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        self.skip_space();
        let (bytes, start) = (self.bytes, self.at);
        let mut at = start;
        let negative = bytes.get(at) == Some(&b'-');
        at += usize::from(negative);
        let mut mantissa = Mantissa::default();
        let mut exponent = 0i64;
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at = mantissa.read(bytes, at).0,
            _ => return None,
        }
        if bytes.get(at) == Some(&b'.') {
            let (end, taken) = mantissa.read(bytes, at + 1);
            if end == at + 1 {
                return None;
            }
            at = end;
            exponent -= taken;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            let sign = match bytes.get(at) {
                Some(b'-') => -1,
                Some(b'+') => 1,
                _ => 0,
            };
            at += usize::from(sign != 0);
            let first = at;
            let mut written = 0i64;
            while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
                written = (written * 10 + i64::from(d - b'0')).min(1 << 20);
                at += 1;
            }
            if at == first {
                return None;
            }
            exponent += if sign < 0 { -written } else { written };
        }
        self.at = at;
        let magnitude = if !mantissa.exact || exponent.unsigned_abs() >= POWERS.len() as u64 {
            None
        } else if mantissa.value < 1 << 53 {
            let power = POWERS[exponent.unsigned_abs() as usize];
            let magnitude = mantissa.value as f64;
            Some(if exponent < 0 {
                magnitude / power
            } else {
                magnitude * power
            })
        } else {
            nearest_wide(mantissa.value, exponent)
        };
        let value = if let Some(magnitude) = magnitude {
            if negative { -magnitude } else { magnitude }
        } else {
            std::str::from_utf8(&bytes[start..at]).ok()?.parse().ok()?
        };
        value.is_finite().then_some(value)
    }
}

/// The `f64` nearest to `mantissa × 10^exponent` (ties to even), for a `mantissa` of at least
/// 2^53 and an `exponent` in -22..=19; `None` outside that range. Computed exactly in `u128`:
/// for a negative exponent, the mantissa shifted left as far as it goes divided by the power of
/// ten (a quotient of at least 54 bits, the remainder kept as the sticky bit); otherwise their
/// product. Then rounded to 53 bits.
fn nearest_wide(mantissa: u64, exponent: i64) -> Option<f64> {
    const POWERS: [u128; 23] = {
        let mut powers = [1u128; 23];
        let mut i = 1;
        while i < 23 {
            powers[i] = powers[i - 1] * 10;
            i += 1;
        }
        powers
    };
    if mantissa < 1 << 53 || !(-22..=19).contains(&exponent) {
        return None;
    }
    let (value, sticky, scale) = if exponent < 0 {
        let power = POWERS[exponent.unsigned_abs() as usize];
        let shift = 64 + mantissa.leading_zeros();
        let dividend = u128::from(mantissa) << shift;
        let quotient = dividend / power;
        (quotient, dividend != quotient * power, -i32::try_from(shift).ok()?)
    } else {
        (u128::from(mantissa) * POWERS[exponent as usize], false, 0)
    };
    // Keep 53 bits; round on the bits dropped below them, and the sticky remainder.
    let dropped = 128 - value.leading_zeros() - 53;
    let mut kept = (value >> dropped) as u64;
    let rest = value & ((1u128 << dropped) - 1);
    let half = 1u128 << (dropped - 1);
    if rest > half || (rest == half && (sticky || kept & 1 == 1)) {
        kept += 1;
    }
    // `kept` ≤ 2^53 is exact in f64; the power of two scales it exactly (a normal number here).
    let power_of_two = scale + i32::try_from(dropped).ok()?;
    Some(kept as f64 * f64::from_bits(((1023 + power_of_two) as u64) << 52))
}

/// The significant digits of a number read so far; up to 19 fit a `u64` exactly.
struct Mantissa {
    value: u64,
    significant: u32,
    /// False once a digit past the 19th significant one was skipped.
    exact: bool,
}

impl Default for Mantissa {
    fn default() -> Self {
        Self {
            value: 0,
            significant: 0,
            exact: true,
        }
    }
}

impl Mantissa {
    /// Reads the run of digits at `at`, eight at a time where eight bytes remain (SWAR, as
    /// simdjson and fast_float do), the rest one by one. Returns the position after the run
    /// and how many of its digits went into `value`.
    fn read(&mut self, bytes: &[u8], mut at: usize) -> (usize, i64) {
        const ZEROS: u64 = 0x3030_3030_3030_3030;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        const POW10: [u64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];
        let mut taken = 0;
        while let Some(chunk) = bytes.get(at..at + 8) {
            let chunk = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            // Each byte less '0': digits become 0..=9; a byte below '0' borrows into its high
            // bit, one above '9' sets it when 0x46 is added. The lowest flagged byte ends the run
            // (carries only travel upwards, past it).
            let values = chunk.wrapping_sub(ZEROS);
            let run = (((chunk.wrapping_add(0x4646_4646_4646_4646) | values) & HIGH).trailing_zeros() / 8) as usize;
            if run == 0 {
                return (at, taken);
            }
            let values = if run == 8 {
                values
            } else {
                values & ((1 << (8 * run)) - 1)
            };
            let leading_zeros = if self.value == 0 {
                ((values.wrapping_add(0x7F7F_7F7F_7F7F_7F7F) & HIGH).trailing_zeros() as usize / 8).min(run)
            } else {
                0
            };
            let significant = self.significant + (run - leading_zeros) as u32;
            if significant > 19 {
                break;
            }
            // The run's digits into the top bytes (zeros below are leading zeros), then the
            // eight-digit SWAR conversion.
            let digits = values << (8 * (8 - run));
            let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
            let number = ((pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32))
                + ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
                >> 32;
            self.value = self.value * POW10[run] + number;
            self.significant = significant;
            taken += run as i64;
            at += run;
            if run < 8 {
                return (at, taken);
            }
        }
        while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
            if self.significant < 19 {
                self.value = self.value * 10 + u64::from(d - b'0');
                self.significant += u32::from(self.value != 0);
                taken += 1;
            } else {
                self.exact = false;
            }
            at += 1;
        }
        (at, taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(body: &str) -> Option<InferRequest> {
        serde_json::from_str(body).ok()
    }

    #[test]
    fn reads_what_serde_reads() {
        for body in [
            r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[0.5,-1,2e-3,1E+2]}]}"#,
            r#" { "id" : "r1" , "inputs" : [ { "datatype" : "FP32" , "shape" : [ 2 , 2 ] ,
                 "name" : "input" , "data" : [ [ 0 , -0.0 ] , [ 3.4028235e38 , 1.17549435e-38 ] ] } ] ,
                 "outputs" : [ { "name" : "class" } ] } "#,
            r#"{"inputs":[{"name":"tokens","shape":[1,3],"datatype":"INT64","data":[[4,8,15]]}],"outputs":[]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":7}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1,0],"datatype":"FP32","data":[]}]}"#,
            r#"{"inputs":[]}"#,
        ] {
            let fast = parse(body.as_bytes()).unwrap_or_else(|| panic!("fast path refused {body}"));
            assert_eq!(Some(fast), serde(body), "{body}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for body in [
            // string escapes, parameters, unknown and repeated keys
            r#"{"id":"a\"b","inputs":[]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#,
            r#"{"inputs":[],"extra":1}"#,
            r#"{"inputs":[],"inputs":[]}"#,
            // malformed JSON and numbers JSON does not allow
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[01]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[+1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e999]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1,]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1 2]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,[2]]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1.5],"datatype":"FP32","data":[1]}]}"#,
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["1"]}]}"#,
            r#"{"inputs":[]} x"#,
            &format!(
                r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
                "[".repeat(33),
                "]".repeat(33)
            ),
            &format!(
                r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}"#,
                "[".repeat(1 << 20)
            ),
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1"#,
            "",
        ] {
            assert!(
                parse(body.as_bytes()).is_none(),
                "fast path took {}",
                &body[..body.len().min(200)]
            );
        }
        // serde then refuses the deep one with its recursion limit, so it gets a 400
        let deep = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1"#,
            "[".repeat(1 << 20)
        );
        assert!(serde(&deep).is_none());
        let nested = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
            "[".repeat(32),
            "]".repeat(32)
        );
        assert_eq!(parse(nested.as_bytes()), serde(&nested));
    }

    /// A deterministic pseudo-random sequence (xorshift64) for the number tests.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn wide_mantissas_round_as_the_standard_parser_does() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
        // Random mantissas from 2^53 up, and ties: 2^53 + odd (halfway between two doubles).
        let cases = (0..50_000).map(|i| {
            let bits = next();
            let mantissa = match i % 3 {
                0 => (1 << 53) + (bits >> 11 | 1),
                1 => (1 << 53) + (bits % 1_000_000) * 2 + 1,
                _ => (bits | 1 << 53) >> (bits % 11),
            };
            (mantissa.max(1 << 53), (bits >> 58) as i64 % 42 - 22)
        });
        for (mantissa, exponent) in cases.chain([(u64::MAX, 19), (u64::MAX, -22), (1 << 53, -22)]) {
            let text = format!("{mantissa}e{exponent}");
            let want: f64 = text.parse().expect("a number");
            let got = nearest_wide(mantissa, exponent);
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{text}");
        }
        assert_eq!(nearest_wide(1 << 53, 20), None);
        assert_eq!(nearest_wide(1 << 53, -23), None);
        assert_eq!(nearest_wide((1 << 53) - 1, 0), None);
    }

    #[test]
    fn numbers_match_serde_bit_for_bit() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15u64);
        let values: Vec<String> = (0..20_000)
            .map(|i| {
                let bits = next();
                match i % 7 {
                    0 => format!("{}", f32::from_bits(bits as u32 & 0x7F7F_FFFF)),
                    // As Python's json writes a float32 widened to a double.
                    5 => format!("{}", f64::from(f32::from_bits(bits as u32 & 0x7F7F_FFFF))),
                    // 16 to 19 digits, with a decimal point among them or an exponent.
                    6 => {
                        let digits = (bits % 9_000_000_000_000_000_000 + 1_000_000_000_000_000).to_string();
                        let at = 1 + (bits >> 59) as usize % (digits.len() - 1);
                        match (bits >> 56) % 3 {
                            0 => format!("{}.{}", &digits[..at], &digits[at..]),
                            1 => format!("{digits}e-{}", (bits >> 40) % 24),
                            _ => format!("{digits}e{}", (bits >> 40) % 21),
                        }
                    }
                    1 => format!("{:e}", (bits >> 11) as f64 / (1u64 << 53) as f64 * 1e6),
                    2 => format!("{}", (bits % 255) as f32 / 255.0),
                    3 => format!("{}", (bits >> 11) as f64 / (1u64 << 53) as f64 * 1e3),
                    _ => format!("-{}", bits % 100_000),
                }
            })
            .chain(
                [
                    "-0",
                    "0",
                    "-0.0",
                    "0.000123",
                    "123456789012345678901234",
                    "1.7976931348623157e308",
                    "5e-324",
                    "1e23",
                    "9007199254740993",
                    "9007199254740995",
                    "9007199254740997e-3",
                    "18014398509481985",
                    "18014398509481987e1",
                    "9999999999999999999e19",
                    "9999999999999999999e-22",
                    "9007199254740993e-22",
                    "0.14509804546833038",
                    "0.1e-30",
                    "12345678901234567890e-5",
                    "1E0",
                    // Digit runs across the eight-byte chunks of the reader.
                    "0.000000000000000000001234567",
                    "1234567890123456789.5",
                    "99999999999999999999",
                    "0.12345678",
                    "0.1234567812345678",
                    "12345678.87654321",
                    "0.00000000",
                    "1.00000000000000000001",
                    "7.000000000000000000000000000001e-3",
                ]
                .map(String::from),
            )
            .collect();
        let body = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1,{}],"datatype":"FP32","data":[{}]}}]}}"#,
            values.len(),
            values.join(",")
        );
        let fast = parse(body.as_bytes()).expect("fast path");
        let slow = serde(&body).expect("serde");
        let (Some(a), Some(b)) = (&fast.inputs[0].data, &slow.inputs[0].data) else {
            panic!("no data");
        };
        let mismatches: Vec<_> =
            a.0.iter()
                .zip(&b.0)
                .zip(&values)
                .filter(|((x, y), _)| x.to_bits() != y.to_bits())
                .collect();
        assert!(mismatches.is_empty(), "{mismatches:?}");
    }
}
