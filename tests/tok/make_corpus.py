#!/usr/bin/python3
"""tests/tok/make_corpus.py OUT [--min-bytes N | --english MAX_BYTES] — tokenizer test text.

Writes OUT: UTF-8 text, one test case per line (no line holds '\\n'), at least
--min-bytes bytes (default 1.5 MB). Deterministic: a fixed seed, and files
taken in sorted order, so the same machine always gives the same corpus.
Nothing of it is committed; the tests make it in the build directory.

Half of it is material found on the machine:
  - English prose: /usr/share/common-licenses;
  - source code: Python's standard library (/usr/lib/python3.*/*.py);
  - prose in other languages: translated man pages (/usr/share/man/LANG),
    groff markup and all;
  - Debian changelogs (names with accents, e-mail addresses, version numbers).
The other half is synthetic, aimed at the places a tokenizer goes wrong:
words in many scripts (Latin with accents, Cyrillic, Greek, Arabic with
harakat, Hebrew with niqqud, CJK, kana, Hangul, Devanagari, Thai), combining
marks, emoji with skin tones, ZWJ sequences, flags and keycaps, other astral
characters (mathematical letters and digits, Gothic, CJK extension B,
cuneiform), digit runs in several scripts, runs of spaces/tabs/other white
space, contractions ('s 're 'll, upper case, curly apostrophes), punctuation
runs, control characters, literal special tokens, very long words and lines,
and white space outside ASCII where regex engines disagree (U+0085 NEL,
U+FEFF BOM, U+180E, U+00A0, U+2000..U+200A, U+3000).

With --english it writes English prose only, for the benchmark: the licenses
and every distinct /usr/share/doc/*/copyright file, in sorted order, up to
MAX_BYTES.

Characters are drawn from blocks assigned by Unicode 13, so their letter and
digit classes are the same in every engine involved (PCRE2 10.42 uses
Unicode 14, Node 20 and Rust's regex 15.x).
"""
import argparse
import glob
import gzip
import os
import random
import sys

SEED = 20240611
MACHINE_SHARE = 0.5  # of --min-bytes, taken from files on the machine


def read_text(path):
    """The file's text if it is UTF-8 (gzip-compressed or not), else None."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read(4 << 20)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return None


def lines_of(text):
    return text.split("\n")


def take_files(paths, budget, rng, sample=True):
    """Lines of files from paths (sorted, then shuffled with rng) until budget bytes."""
    paths = sorted(set(os.path.realpath(p) for p in paths if os.path.isfile(p)))
    if sample:
        rng.shuffle(paths)
    out, used = [], 0
    for p in paths:
        if used >= budget:
            break
        text = read_text(p)
        if not text:
            continue
        text = text[: int(max(0, budget - used)) + 1]
        for line in lines_of(text):
            out.append(line)
            used += len(line.encode("utf-8")) + 1
    return out


def machine_lines(budget, rng):
    parts = []
    # English prose, all of it (about 250 KB)
    parts += take_files(glob.glob("/usr/share/common-licenses/*"), budget * 0.35, rng, sample=False)
    # Python source
    pydirs = sorted(glob.glob("/usr/lib/python3.*"))
    if pydirs:
        parts += take_files(glob.glob(pydirs[0] + "/*.py"), budget * 0.30, rng)
    # other languages: a share per language
    langs = [d for d in sorted(glob.glob("/usr/share/man/*")) if os.path.basename(d)[:1].islower()
             and not os.path.basename(d).startswith("man")]
    for d in langs:
        parts += take_files(glob.glob(d + "/man*/*"), budget * 0.25 / max(1, len(langs)), rng)
    parts += take_files(glob.glob("/usr/share/doc/*/changelog.Debian.gz"), budget * 0.10, rng)
    return parts


def english_lines(max_bytes):
    paths = sorted(glob.glob("/usr/share/common-licenses/*")) + \
        sorted(glob.glob("/usr/share/doc/*/copyright"))
    seen, out, used = set(), [], 0
    for p in paths:
        text = read_text(p)
        if not text or text in seen:
            continue
        seen.add(text)
        for line in lines_of(text.rstrip("\n")):
            n = len(line.encode("utf-8")) + 1
            if used + n > max_bytes:
                return out
            out.append(line)
            used += n
    return out


def rng_range(rng, ranges):
    """A code point from one of the (lo, hi) ranges, weighted by their size."""
    total = sum(hi - lo + 1 for lo, hi in ranges)
    k = rng.randrange(total)
    for lo, hi in ranges:
        if k <= hi - lo:
            return chr(lo + k)
        k -= hi - lo + 1
    raise AssertionError


LATIN = "abcdefghijklmnopqrstuvwxyz"
ACCENTED = "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿßœłńśźżčďěňřšťůžőűąęğışĀāĒēĪīŌōŪū"
SCRIPTS = {
    "latin": lambda rng: rng.choice([LATIN, LATIN.upper(), ACCENTED, ACCENTED.upper()]),
    "cyrillic": [(0x0410, 0x044F), (0x0401, 0x0401), (0x0451, 0x0451)],
    "greek": [(0x0391, 0x03A1), (0x03A3, 0x03A9), (0x03B1, 0x03C9), (0x03AC, 0x03AF)],
    "arabic": [(0x0621, 0x063A), (0x0641, 0x064A)],
    "hebrew": [(0x05D0, 0x05EA)],
    "cjk": [(0x4E00, 0x9FA5)],
    "hiragana": [(0x3041, 0x3096)],
    "katakana": [(0x30A1, 0x30FA)],
    "hangul": [(0xAC00, 0xD7A3)],
    "devanagari": [(0x0915, 0x0939)],
    "thai": [(0x0E01, 0x0E2E)],
    "math": [(0x1D400, 0x1D454), (0x1D456, 0x1D49C)],  # mathematical bold/italic letters
    "gothic": [(0x10330, 0x1034A)],                     # 10341 and 1034A are letter numbers (Nl)
    "cjk_b": [(0x20000, 0x2A6D6)],
    "cuneiform": [(0x12000, 0x12399)],
}
MARKS = {  # combining marks that follow a script's base letters
    "latin": [(0x0300, 0x036F)],
    "arabic": [(0x064B, 0x0652)],
    "hebrew": [(0x05B0, 0x05BC)],
    "devanagari": [(0x093E, 0x094D)],
    "thai": [(0x0E31, 0x0E31), (0x0E34, 0x0E3A), (0x0E47, 0x0E4E)],
}
DIGITS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "๐๑๒๓๔๕๖๗๘๙", "０１２３４５６７８９",
          "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", "ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ", "½¼¾²³¹⁰"]
EMOJI = [(0x1F600, 0x1F64F), (0x1F300, 0x1F5FF), (0x1F680, 0x1F6C5), (0x2600, 0x26FF),
         (0x1F900, 0x1F9FF)]
SKIN = [chr(c) for c in range(0x1F3FB, 0x1F400)]
ZWJ_SEQ = ["👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🏳️\u200d🌈", "👁️\u200d🗨️", "🧑🏽\u200d🚀",
           "❤️\u200d🔥", "🐻\u200d❄️"]
FLAGS = ["🇫🇷", "🇯🇵", "🇺🇸", "🇧🇷", "🇮🇳", "🇪🇺", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"]
KEYCAPS = [d + "\ufe0f\u20e3" for d in "0123456789#*"]
PUNCT = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "—", "–", "«", "»", "„", "“", "”", "‘", "’",
                                                     "¿", "¡", "。", "、", "「", "」", "·", "•", "§", "¶",
                                                     "©", "®", "™", "€", "£", "¥", "°", "±", "×", "÷"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "’s", "’ll", "''s",
                "'x", "n't"]
SPACES = [" ", "  ", "\t", " \t", "\t\t", "\u00a0", "\u3000", "\u2003", "\u2009", "\u200a", "\u2028",
          "\u2029", "\u202f", "\u205f", "\u1680", "\x0b", "\x0c", "\r"]
ODD_SPACE = ["\u0085", "\ufeff", "\u180e", "\u200b", "\u2060"]  # NEL, BOM, Mongolian VS, ZWSP, WJ
CONTROLS = [chr(c) for c in list(range(0x00, 0x09)) + list(range(0x0E, 0x20)) + [0x7F]
            + list(range(0x80, 0x85)) + list(range(0x86, 0xA0))]
SPECIAL = ["<|endoftext|>", "<|endoftext|", "|endoftext|>", "<|im_start|>", "<s>", "</s>", "[CLS]"]
IOI = ["When Mary and John went to the store, John gave a drink to",
       "When Tom and James went to the park, James gave the ball to",
       "After Lisa and Anne arrived at the café, Anne handed her coffee to"]


def word(rng, script, length):
    spec = SCRIPTS[script]
    if callable(spec):
        alphabet = spec(rng)
        w = "".join(rng.choice(alphabet) for _ in range(length))
    else:
        w = "".join(rng_range(rng, spec) for _ in range(length))
    if script in MARKS and rng.random() < 0.5:
        chars = list(w)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(chars))
            chars[i] += "".join(rng_range(rng, MARKS[script]) for _ in range(rng.randint(1, 3)))
        w = "".join(chars)
    return w


def number(rng):
    k = rng.random()
    if k < 0.4:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))
    if k < 0.6:
        return f"{rng.randint(0, 10**9):,}" + (f".{rng.randint(0, 99):02d}" if rng.random() < 0.5 else "")
    if k < 0.7:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}e}"
    digits = rng.choice(DIGITS)
    return "".join(rng.choice(digits) for _ in range(rng.randint(1, 12)))


def emoji(rng):
    k = rng.random()
    if k < 0.4:
        return rng_range(rng, EMOJI) + ("\ufe0f" if rng.random() < 0.2 else "")
    if k < 0.55:
        return rng_range(rng, [(0x1F466, 0x1F469), (0x1F44A, 0x1F450)]) + rng.choice(SKIN)
    if k < 0.75:
        return rng.choice(ZWJ_SEQ)
    if k < 0.9:
        return rng.choice(FLAGS)
    return rng.choice(KEYCAPS)


def token(rng):
    """One random piece of a synthetic line."""
    k = rng.random()
    if k < 0.45:
        script = rng.choice(list(SCRIPTS))
        return word(rng, script, rng.randint(1, 12))
    if k < 0.55:
        return number(rng)
    if k < 0.65:
        return emoji(rng)
    if k < 0.77:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 6)))
    if k < 0.85:
        return word(rng, "latin", rng.randint(1, 8)) + rng.choice(CONTRACTIONS)
    if k < 0.93:
        return "".join(rng.choice(SPACES) for _ in range(rng.randint(1, 8)))
    if k < 0.96:
        return rng.choice(SPECIAL)
    if k < 0.98:
        return rng.choice(CONTROLS)
    return rng.choice(ODD_SPACE)


def synthetic_line(rng):
    k = rng.random()
    if k < 0.55:  # mixed pieces, mostly separated by a space
        parts = []
        for _ in range(rng.randint(1, 30)):
            parts.append(token(rng))
            parts.append(" " if rng.random() < 0.7 else "")
        return "".join(parts)
    if k < 0.70:  # one script, like prose in it
        script = rng.choice(list(SCRIPTS))
        sep = "" if script in ("cjk", "hiragana", "katakana", "thai", "cjk_b") else " "
        words = [word(rng, script, rng.randint(1, 9)) for _ in range(rng.randint(3, 25))]
        return sep.join(words) + rng.choice(["", ".", "。", "!", "?", "…", " :"])
    if k < 0.85:  # short strings over a small alphabet of characters that decide splits
        alphabet = ["a", "b", "Z", "é", "1", "٣", " ", " ", "\t", "'", "s", "ll", ".", ",", "\"", "😀",
                    "\u0301", "\u00a0", "\u3000", "\r", "\x0b"] + ODD_SPACE
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
    if k < 0.93:  # IOI-style prompts with names, leading/trailing spaces
        s = rng.choice(IOI)
        return rng.choice(["", " ", "  "]) + s + rng.choice(["", " Mary", " John", " ", "\t"])
    if k < 0.97:  # white space runs with a word at either end or none
        ws = "".join(rng.choice(SPACES + [" "] * 6) for _ in range(rng.randint(1, 40)))
        return rng.choice(["", "word"]) + ws + rng.choice(["", "x", "1", "!"])
    if k < 0.99:  # a long word or a long run
        n = rng.randint(200, 3000)
        return rng.choice([
            lambda: word(rng, rng.choice(list(SCRIPTS)), n),
            lambda: "".join(rng.choice("0123456789") for _ in range(n)),
            lambda: " " * n + "end",
            lambda: "=" * n,
            lambda: "ab" * (n // 2),
        ])()
    return rng.choice(ODD_SPACE) + synthetic_line(rng) + rng.choice(ODD_SPACE)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--min-bytes", type=int, default=1_500_000)
    ap.add_argument("--english", type=int, metavar="MAX_BYTES")
    args = ap.parse_args()
    rng = random.Random(SEED)

    if args.english:
        lines = english_lines(args.english)
    else:
        lines = machine_lines(int(args.min_bytes * MACHINE_SHARE), rng)
        size = sum(len(x.encode("utf-8")) + 1 for x in lines)
        while size < args.min_bytes:
            line = synthetic_line(rng)
            assert "\n" not in line
            lines.append(line)
            size += len(line.encode("utf-8")) + 1
        rng.shuffle(lines)  # machine and synthetic lines mixed, so a cache sees both in turn
    size = sum(len(x.encode("utf-8")) + 1 for x in lines)

    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        for line in lines:
            f.write(line.encode("utf-8") + b"\n")
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(lines)} lines, {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
