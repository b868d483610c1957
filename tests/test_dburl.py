"""Passwords never show, and URLs can come from the environment or a service file."""

from __future__ import annotations

import doctest
import traceback
from pathlib import Path

import pytest

import landquota.settings
import landquota.store.dburl
from landquota.cli import main
from landquota.errors import ParameterError, WorkspaceError
from landquota.settings import Settings, mask_secrets, mask_url
from landquota.store.api import open_workspace
from landquota.store.dburl import resolve_db

SECRET = "Zq7-s3cret-pw"


def test_docstring_examples() -> None:
    assert doctest.testmod(landquota.store.dburl).failed == 0
    assert doctest.testmod(landquota.settings).failed == 0  # mask_secrets' examples


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"postgresql://ann:{SECRET}@db:5432/land", "postgresql://ann:***@db:5432/land"),
        (
            f"postgresql+psycopg://ann:{SECRET}@db/land?schema=x",
            "postgresql+psycopg://ann:***@db/land?schema=x",
        ),
        # an unencoded "@" inside the password is masked too
        (f"postgresql://ann:p@{SECRET}@db/land", "postgresql://ann:***@db/land"),
        (
            f"postgresql://ann@db/land?password={SECRET}&schema=x",
            "postgresql://ann@db/land?password=***&schema=x",
        ),
        (
            f"host=db user=ann password='{SECRET} x' dbname=land",
            "host=db user=ann password=*** dbname=land",
        ),
        (f"PGPASSWORD={SECRET} landquota info", "PGPASSWORD=*** landquota info"),
        (
            f"cannot connect to 'postgresql://u:{SECRET}@h/d': refused",
            "cannot connect to 'postgresql://u:***@h/d': refused",
        ),
        ("postgresql://ann@db/land", "postgresql://ann@db/land"),
        ("gis_data/yangshan_demo.gpkg", "gis_data/yangshan_demo.gpkg"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert SECRET not in mask_secrets(text)


@pytest.mark.parametrize(
    ("value", "resolved"),
    [
        ("service:bureau", "postgresql://@/?service=bureau"),
        (
            "service:bureau-2.a_b?schema=ws2014",
            "postgresql://@/?service=bureau-2.a_b&schema=ws2014",
        ),
        ("postgresql://ann@db/land", "postgresql://ann@db/land"),
        ("work/ws.gpkg", "work/ws.gpkg"),
    ],
)
def test_resolve_db(value: str, resolved: str) -> None:
    assert resolve_db(value) == resolved


@pytest.mark.parametrize("value", ["service:", "service:a b", "service:x;drop", "service:../etc"])
def test_resolve_db_refuses_bad_service_names(value: str) -> None:
    with pytest.raises(ParameterError, match="service:NAME"):
        resolve_db(value)


@pytest.mark.parametrize("value", [None, ""])
def test_resolve_db_reads_landquota_db(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    monkeypatch.setenv("LANDQUOTA_DB", "postgresql://ann@db/land?schema=env")
    assert resolve_db(value) == "postgresql://ann@db/land?schema=env"


def test_settings_repr_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://ann:{SECRET}@db/land"
    assert SECRET not in repr(Settings(db=url))
    monkeypatch.setenv("LANDQUOTA_DB", url)
    assert SECRET not in repr(Settings.from_env())


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_failed_connection_does_not_show_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://ann:{SECRET}@127.0.0.1:1/land"  # port 1: nothing listens
    with pytest.raises(WorkspaceError, match="cannot connect") as info:
        open_workspace(url)
    assert SECRET not in _all_text(info.value)
    assert "ann:***@127.0.0.1:1" in str(info.value)
    # the command line's one-line error, on both streams
    assert main(["info", "--db", url]) == 2
    out, err = capsys.readouterr()
    assert "cannot connect" in err and SECRET not in out + err


def test_password_in_the_query_string_is_hidden_too() -> None:
    url = f"postgresql://ann@127.0.0.1:1/land?password={SECRET}"
    with pytest.raises(WorkspaceError) as info:
        open_workspace(url)
    assert SECRET not in _all_text(info.value)
    assert SECRET not in mask_url(url)


@pytest.mark.postgis
def test_workspace_repr_and_errors_hide_the_password(pg_url: str) -> None:
    # trust authentication accepts any password, so the URL works as given
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@", 1)
    with open_workspace(url, create=True) as ws:
        assert SECRET not in repr(ws) and SECRET not in str(ws)
        assert SECRET not in ws.meta().get("created_by_version", "")
        with pytest.raises(Exception) as info:
            ws.write_layer("towns", __import__("pandas").DataFrame({"town_id": ["T1"]}))
        assert SECRET not in _all_text(info.value)


@pytest.mark.postgis
def test_service_file_supplies_the_connection(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    p = urlsplit(pg_url)
    schema = p.query.split("schema=", 1)[1]
    conf = tmp_path / "pg_service.conf"
    conf.write_text(
        f"[lq_test]\nhost={p.hostname}\nport={p.port}\ndbname={p.path.lstrip('/')}\n"
        f"user={p.username}\npassword={SECRET}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PGSERVICEFILE", str(conf))
    target = resolve_db(f"service:lq_test?schema={schema}")
    with open_workspace(target, create=True) as ws:
        assert ws.kind == "postgis" and ws.user() == p.username
        assert ws.layer_counts()["parcels"] == 0
        assert SECRET not in repr(ws)
    # an unknown service is a clean error naming it, not a traceback
    with pytest.raises(WorkspaceError, match="nosuch"):
        open_workspace(resolve_db("service:nosuch"))


@pytest.mark.postgis
def test_host_less_service_url_works(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    p = urlsplit(pg_url)
    conf = tmp_path / "pg_service.conf"
    conf.write_text(
        f"[lq_test]\nhost={p.hostname}\nport={p.port}\ndbname={p.path.lstrip('/')}\nuser={p.username}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PGSERVICEFILE", str(conf))
    with open_workspace(f"postgresql:///?service=lq_test&{p.query}", create=True) as ws:
        assert ws.kind == "postgis"
