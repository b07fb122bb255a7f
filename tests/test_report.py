"""The Snakemake report (``snakemake --report``): every caption and the front page are valid RST,
the front page shows the configuration as YAML, and the report of the tiny run, opened in
headless Chromium, shows every figure and table in catalog order without an error block."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT, TINY, TINY_CFG, smk
from docutils.core import publish_parts
from docutils.writers import get_writer_class
from jinja2 import Environment

from lazyphase.pipeline import report as rep
from lazyphase.studies.catalog import FIGURES, TABLES

REPORT_DIR = ROOT / "workflow" / "report"
#: what an error block of the report says: docutils, jinja, a Python traceback
ERRORS = ("System Message", "Docutils System Messages", "Traceback", "UndefinedError",
          "TemplateSyntaxError", "Error rendering", "Error loading caption")  # fmt: skip


def _config(path: Path) -> dict:
    """A workflow configuration with its defaults filled in, as the Snakefile validates it."""
    from snakemake.utils import validate

    cfg = yaml.safe_load(path.read_text())
    validate(cfg, schema=str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return cfg


def _render(path: Path, **context) -> str:
    """A caption or the front page as Snakemake renders it: jinja, then docutils. Fails on any
    docutils system message (warning or worse)."""
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    rst = env.from_string(path.read_text()).render(**context)
    warnings = io.StringIO()
    html = publish_parts(
        rst,
        writer=get_writer_class("html")(),
        settings_overrides={"warning_stream": warnings, "report_level": 2},
    )["html_body"]
    assert not warnings.getvalue(), f"{path.name}:\n{warnings.getvalue()}\n{rst}"
    assert "system-message" not in html, path.name
    return rst


class _Record(SimpleNamespace):
    """What the front page reads of a report entry (snakemake.report.FileRecord)."""


def _front_page_context(cfg: dict) -> dict:
    from snakemake.report import Category

    categories: dict = {}
    files = []
    for name, exp in cfg["experiments"].items():
        entries = [
            (
                rep.section(cfg["experiments"], name, f),
                rep.figure_labels(FIGURES[f]),
                f"figures/{f}.png",
            )
            for f in exp["figures"]
        ] + [(rep.section(cfg["experiments"], name), rep.table_labels(t), t) for t in rep.TABLES]
        for (cat, sub), labels, file in entries:
            rec = _Record(
                path=Path(f"results/{name}/{file}"),
                labels=labels,
                caption="<p>A caption: <em>|a_j|</em> b_j.</p>\n<p>Second paragraph.</p>",
                job=SimpleNamespace(params=SimpleNamespace(code="0.1.0-abcdef012345")),
            )
            categories.setdefault(Category(cat), {}).setdefault(Category(sub), []).append(rec)
            files.append(rec)
    return {"snakemake": SimpleNamespace(config=cfg), "categories": categories, "files": files}


def test_every_caption_is_valid_rst(tmp_path):
    csv = tmp_path / "table.csv"
    csv.write_text('a,b,note\n1,,"x, y"\n-0.5,2.0,z\n')
    outputs = SimpleNamespace(**{role: str(csv) for role in TABLES})
    captions = sorted(REPORT_DIR.rglob("*.rst"))
    assert len(captions) >= len(FIGURES) + len(rep.TABLES) + 1
    for path in captions:
        if path.name == "workflow.rst":
            for cfg in (_config(ROOT / "config.yaml"), _config(TINY)):
                _render(path, **_front_page_context(cfg))
            _render(path, snakemake=SimpleNamespace(config=_config(TINY)), categories={}, files=[])
            continue
        for kind in ("phase_diagram", "deep_phase_diagram"):
            config = {"experiments": {"x": {"kind": kind}}}
            sm = SimpleNamespace(output=outputs, wildcards=SimpleNamespace(experiment="x"),
                                 config=config, params=SimpleNamespace(code="0.1.0-x"))  # fmt: skip
            _render(path, snakemake=sm, categories={}, files=[])


def test_every_report_table_has_a_caption():
    for file in rep.TABLES:
        assert file in TABLES.values(), file
        assert (REPORT_DIR / "tables" / file.replace(".csv", ".rst")).exists(), file


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads ``1e-40`` (YAML 1.2 and JSON) as a string; this loader reads a float."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.nan$"),
    list("-+0123456789."),
)


@pytest.mark.parametrize(
    "path", [ROOT / "config.yaml", TINY, ROOT / "tests" / "configs" / "chizat_tiny.yaml"],
    ids=lambda p: p.name,
)  # fmt: skip
def test_front_page_shows_the_configuration_as_yaml(path):
    cfg = _config(path)
    rst = _render(REPORT_DIR / "workflow.rst", snakemake=SimpleNamespace(config=cfg),
                  categories={}, files=[])  # fmt: skip
    block = rst.split(".. code-block:: yaml\n", 1)[1]
    lines = [line[4:] for line in block.splitlines() if line.startswith("    ") or not line]
    assert yaml.load("\n".join(lines), Loader=_Yaml12Loader) == cfg


def test_report_sections_sort_in_catalog_order():
    """Snakemake sorts categories, subcategories and entries by name (localeCompare): the names
    give the catalog order, tables last."""
    cfg = _config(ROOT / "config.yaml")["experiments"]
    order = list(FIGURES)
    placed = sorted(
        (*rep.section(cfg, name, f), rep.figure_labels(FIGURES[f])["label"], f)
        for name, exp in cfg.items()
        for f in exp["figures"]
    )
    families = [FIGURES[f].label[0] for *_, f in placed]
    assert families == sorted(families)
    for name in cfg:
        mine = [f for cat, sub, _, f in placed if sub.endswith(f" · {name}")]
        assert mine == sorted(mine, key=order.index), name
    assert rep.TABLE_LABEL.casefold() > max(f.label for f in FIGURES.values()).casefold()


# --- the report in a browser -------------------------------------------------------------------


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver; installs them (scripts/install_chromium.sh) when
    missing and root; skips with the reason otherwise."""

    def which() -> tuple[str | None, str | None]:
        browser = (
            os.environ.get("CHROMIUM")
            or shutil.which("chromium")
            or shutil.which("chromium-browser")
        )
        return browser, os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")

    browser, driver = which()
    if not (browser and driver):
        if os.geteuid() != 0:
            pytest.skip(
                "chromium/chromedriver missing and not root: run scripts/install_chromium.sh as root"
            )
        r = subprocess.run(["bash", str(ROOT / "scripts" / "install_chromium.sh")],
                           capture_output=True, text=True)  # fmt: skip
        browser, driver = which()
        if not (browser and driver):
            pytest.skip(f"chromium could not be installed: {(r.stdout + r.stderr)[-500:]}")
    return browser, driver


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium missing: pip install -e '.[dev]'"
    )
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1200"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(driver, script: str, what: str, timeout: float = 30.0):
    """Poll a JavaScript expression until it is truthy; return its value (generous timeout: the
    CI machine runs two test workers beside the browser)."""
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _no_error_block(driver, where: str) -> None:
    text = driver.execute_script("return document.body.innerText;")
    for err in ERRORS:
        assert err not in text, f"{where}: {err!r} on the page"
    assert not driver.execute_script("return document.querySelector('.system-message');"), where


def _click(driver, xpath: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, xpath).click()


#: the rows of the entries of a subcategory (Snakemake's results table)
ROWS = "//table[contains(@class, 'w-full')]/tbody/tr"


def _menu_item(label: str) -> str:
    return f"//a[span[normalize-space()='{label}']]"


@pytest.mark.browser
def test_report_in_a_browser(tiny_report, browser):
    """Every figure of the tiny run's report renders (the image loads, its caption shows) and
    every table shows as a table, reached through the menu; entries in catalog order; no error
    block anywhere."""
    from selenium.webdriver.common.by import By

    from lazyphase.pipeline.fingerprint import code_fingerprint

    start = time.perf_counter()
    cfg = yaml.safe_load(TINY.read_text())["experiments"]
    expected = {(name, f) for name, exp in cfg.items() for f in exp["figures"]}
    browser.get(tiny_report.as_uri())
    _wait(browser, "typeof app !== 'undefined' && document.querySelector('h1')", "the front page")

    # the front page: title, fingerprint, every figure's label and caption, the YAML, no errors
    front = browser.execute_script("return document.body.innerText;")
    assert "lazyphase: when is training lazy?" in front
    assert f"Code fingerprint: {code_fingerprint()}" in front
    for _, f in expected:
        assert f"{FIGURES[f].label} · {FIGURES[f].title}" in front, f
    assert "Configuration" in front and "experiments:\n  theta_lazy:\n" in front
    _no_error_block(browser, "front page")
    top = browser.execute_script("return document.querySelector('h1').getBoundingClientRect().top")
    assert top >= 0, "the front page's top is cut off"

    # the menu: categories in family order; each subcategory's entries: figures, then tables
    categories = browser.execute_script("return Object.keys(categories);")
    shown_cats = [c for c in categories if browser.find_elements(By.XPATH, _menu_item(c))]
    menu = [e.text for e in browser.find_elements(By.XPATH, "//li/a/span")]
    assert [m for m in menu if m in categories] == sorted(categories) == sorted(shown_cats)
    seen = set()
    n_tables = 0
    for cat in sorted(categories):
        for sub in sorted(
            browser.execute_script("return Object.keys(categories[arguments[0]]);", cat)
        ):
            browser.execute_script("app.setView({navbarMode: 'menu'});")
            _click(browser, _menu_item(cat))
            if browser.find_elements(By.XPATH, _menu_item(sub)):  # one subcategory: opened at once
                _click(browser, _menu_item(sub))
            _wait(browser, f"document.evaluate({ROWS!r}, document).iterateNext()", sub)
            rows = [
                [td.text for td in tr.find_elements(By.TAG_NAME, "td")[:3]]
                for tr in browser.find_elements(By.XPATH, ROWS)
            ]
            labels = [r[0] for r in rows]
            figs = [lab for lab in labels if lab != rep.TABLE_LABEL]
            assert labels == figs + [rep.TABLE_LABEL] * (len(labels) - len(figs)), (sub, labels)
            assert figs == sorted(figs, key=lambda lab: (lab[0], int(lab[1:]))), (sub, labels)
            experiment = sub.split(" · ", 1)[1]
            for i, (label, title, file) in enumerate(rows):
                row = f"({ROWS})[{i + 1}]"
                path = f"results/{experiment}/{'figures/' if label != 'table' else ''}{file}"
                if label != rep.TABLE_LABEL:
                    # the eye button shows the image in the main pane: it must load
                    _click(browser, f"{row}//a[1]")
                    size = _wait(
                        browser,
                        "(() => { const i = [...document.images].find(i => i.src === "
                        "results[arguments[0]].data_uri); return i && i.complete && "
                        "i.naturalWidth; })()".replace("arguments[0]", repr(path)),
                        f"the image of {path}",
                    )
                    assert size > 0, path
                    assert title == FIGURES[file.removesuffix(".png")].title, path
                    seen.add((experiment, file.removesuffix(".png")))
                _click(browser, f"{row}//a[2]")  # the info button: labels, caption (and table)
                desc = _wait(
                    browser,
                    "(() => { const d = document.querySelector('li.prose'); "
                    "return d && d.innerText; })()",
                    f"the description of {path}",
                )
                if label == rep.TABLE_LABEL:
                    n_tables += 1
                    cells = browser.find_elements(
                        By.XPATH, "//li[contains(@class, 'prose')]//table//td"
                    )
                    assert file in desc and cells, f"{path}: no table"
                else:
                    assert label in desc, f"{path}: caption missing"
                _no_error_block(browser, path)
                browser.execute_script(
                    "app.setView({navbarMode: 'subcategory', category: arguments[0], "
                    "subcategory: arguments[1]});",
                    cat,
                    sub,
                )
                _wait(browser, f"!document.querySelector('li.prose') && "
                      f"document.evaluate({ROWS!r}, document).iterateNext()", sub)  # fmt: skip
    assert seen == expected
    assert (
        n_tables >= 13
    )  # exponents, threshold, function_exponents (x3), phase, boundary (x2), ...
    severe = [
        entry for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]  # fmt: skip
    assert not severe, severe
    print(
        f"browser check: {len(seen)} figures, {n_tables} tables in {time.perf_counter() - start:.1f} s"
    )


# --- the report as a zip (the catalog's `report: true`) -----------------------------------------


def _report_data(html: str) -> tuple[dict, dict]:
    """The entries (``results``) and menu (``categories``) a Snakemake report page embeds."""

    def var(name: str) -> dict:
        found = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S)
        assert found, f"no {name} in the report"
        return json.loads(found.group(1))

    return var("results"), var("categories")


def test_report_zip_has_the_entries_of_the_html_report(tiny_report):
    """``snakemake --report report.zip`` (.snakemake-workflow-catalog.yml says it works): the same
    entries, captions, labels and menu as report.html, each file stored once in the zip with the
    bytes of the HTML report's embedded copy and of the result itself."""
    work = tiny_report.parent
    r = smk(*TINY_CFG, "--directory", str(work), "--report", str(work / "report.zip"))
    assert r.returncode == 0, r.stderr[-2000:]
    html_results, html_categories = _report_data(tiny_report.read_text())
    with zipfile.ZipFile(work / "report.zip") as archive:
        stored = {name: archive.read(name) for name in archive.namelist()}
    zip_results, zip_categories = _report_data(stored["report/report.html"].decode())
    assert zip_categories == html_categories
    assert set(zip_results) == set(html_results) and len(html_results) >= 20
    data = {name for name in stored if name != "report/report.html"}
    assert {f"report/{e['data_uri']}" for e in zip_results.values()} == data  # nothing else
    for path, entry in html_results.items():
        in_zip = zip_results[path]
        assert {k: v for k, v in in_zip.items() if k != "data_uri"} == {
            k: v for k, v in entry.items() if k != "data_uri"
        }, path
        embedded = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        assert stored[f"report/{in_zip['data_uri']}"] == embedded == (work / path).read_bytes()
