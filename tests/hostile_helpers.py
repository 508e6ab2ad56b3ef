"""Shared by the hostile-input tests: the CLI run in-process, hostile files, and a markdown link detector.

``markdown_links`` says which links and images a markdown renderer like Streamlit's (CommonMark + GFM) would make
of a text: link and image tokens from markdown-it-py's CommonMark parser, raw HTML, and the bare URLs and e-mail
addresses that GFM turns into links after parsing (what ``remark-gfm`` finds: ``http(s)://``, ``www.``, ``a@b.c``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import sys

from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")
_BARE_URL = re.compile(r"(?i)(https?://|www\.)[-.\w]")
_EMAIL = re.compile(r"[-.\w+]+@[-\w]+(\.[-\w]+)+")

# the link-injection payloads of the issue (a phishing link and a tracking image, both off-box)
LINK = "[Session expired - log in again](http://evil.example/login)"
IMAGE = "![b](http://127.0.0.1:9/beacon.png)"
PAYLOAD = f"{LINK} {IMAGE}"
HOSTILE_TEXT = [PAYLOAD, "<img src=x onerror=alert(1)>", "<a href='http://evil.example'>x</a>",
                "http://evil.example/x www.evil.example mail@evil.example", "**bold** _it_ `code` $x^2$ ~~s~~",
                ":red[red] :material/warning: [a][b]\n\n[b]: http://evil.example", "# heading\n> quote\n- item",
                "\x1b[31mred\x1b[0m \u202eevil", "=HYPERLINK(\"http://evil.example\")", "a" * 400]


def markdown_links(text: str) -> list[str]:
    """Every link, image, raw HTML piece or auto-linked URL/e-mail the markdown ``text`` would render."""
    found: list[str] = []
    for block in _MD.parse(text):
        for tok in block.children or []:
            if tok.type in ("link_open", "image", "html_inline"):
                found.append(f"{tok.type}: {tok.attrs or tok.content}")
            elif tok.type == "text":
                found += [f"autolink: {m.group(0)}" for m in _BARE_URL.finditer(tok.content)]
                found += [f"email: {m.group(0)}" for m in _EMAIL.finditer(tok.content)]
        if block.type == "html_block":
            found.append(f"html_block: {block.content[:60]}")
    return found


def page_texts(at) -> list[str]:
    """The markdown of every element an AppTest page shows that Streamlit renders as markdown."""
    out = []
    for kind in ("markdown", "caption", "warning", "error", "info", "success", "subheader", "header", "title"):
        out += [str(el.value) for el in getattr(at, kind)]
    return out


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("the command did not finish in time (a hang)")


def run_cli(argv: list[str], stdin: bytes = b"", timeout_s: int = 60) -> tuple[object, str, str]:
    """``costmodel.cli.main(argv)`` in this process: (exit status or the exception it raised, stdout, stderr)."""
    from costmodel.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout_s)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    except BaseException as exc:  # noqa: BLE001 - the caller asserts on it
        rc = exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        sys.stdin = old_stdin
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(result, field: str | None = None) -> str:
    """Exit status 2 and exactly one stderr line ``error: <field>: ...``; returns that line."""
    rc, out, err = result
    assert rc == 2, (rc, err[-2000:])
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    if field is not None:
        assert lines[0].startswith(f"error: {field}"), lines[0]
    assert "Traceback" not in err
    return lines[0]


def write_hostile_files(d) -> dict[str, str]:
    """Config, device and scenario files of the issue, in folder ``d``: name -> path."""
    d = str(d)
    files = {
        "deep": '{"a":' * 100_000 + "1" + "}" * 100_000,
        "bigint": '{"model_type": "gpt2", "n_layer": ' + "9" * 5000 + "}",
        "e999": '{"model_type": "gpt2", "n_embd": 1e999}',
        "model_type_list": '{"model_type": ["gpt2"]}',
        "surrogate": '{"model_type": "gpt2", "_name_or_path": "\\ud800"}',
        "n_embd_1e300": '{"model_type": "gpt2", "n_embd": 1e300}',
        "n_layer_1e18": '{"model_type": "gpt2", "n_layer": 1e18}',
        "vocab_2_62": '{"model_type": "gpt2", "vocab_size": %d}' % 2**62,
        "nan_dropout": '{"model_type": "gpt2", "resid_pdrop": NaN}',
        "dropout_5": '{"model_type": "gpt2", "resid_pdrop": 5}',
        "duplicate_key": '{"model_type": "gpt2", "n_layer": 2, "n_layer": 48}',
        "not_json": "model_type: gpt2",
        "kv_heads_0": json.dumps({"model_type": "llama", "hidden_size": 512, "num_attention_heads": 8,
                                  "num_key_value_heads": 0, "num_hidden_layers": 2, "intermediate_size": 1024,
                                  "vocab_size": 1000}),
        "experts_0": json.dumps({"model_type": "mixtral", "hidden_size": 512, "num_attention_heads": 8,
                                 "num_key_value_heads": 8, "num_hidden_layers": 2, "intermediate_size": 1024,
                                 "vocab_size": 1000, "num_local_experts": 0, "num_experts_per_tok": 2}),
        "injected_name": json.dumps({"model_type": "gpt2", "n_layer": 2, "_name_or_path": PAYLOAD}),
    }
    out = {}
    for name, text in files.items():
        path = os.path.join(d, f"{name}.json")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        out[name] = path
    fifo = os.path.join(d, "fifo.json")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    out["fifo"] = fifo
    big = os.path.join(d, "big.json")  # 3 MB: over every reader's limit
    with open(big, "w", encoding="utf-8") as fh:
        fh.write('{"pad": "' + "x" * 3_000_000 + '"}')
    out["big"] = big
    return out
