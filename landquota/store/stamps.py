"""Who wrote it: the PostGIS triggers that stamp ledger entries and runs with the login.

Part of creating a PostGIS workspace (:mod:`landquota.store.postgis`) and of
granting roles and restoring backups (:mod:`landquota.store.roles`,
:mod:`landquota.store.backup`); kept apart so that the backend does not import
the role administration that builds on it.
"""

from __future__ import annotations

__all__ = ["STAMP_TRIGGERS", "quote_ident", "stamp_triggers_sql"]

#: Stamp triggers by table (a restore by the owner disables them inside its transaction).
STAMP_TRIGGERS: dict[str, str] = {
    "quota_ledger": "quota_ledger_stamp",
    "allocation_runs": "allocation_runs_stamp",
}


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (names are quoted, never pasted raw)."""
    return '"' + name.replace('"', '""') + '"'


def stamp_triggers_sql(schema: str) -> list[str]:
    """Return SQL of the BEFORE triggers that stamp who wrote ledger entries and runs.

    * ``quota_ledger``, before insert: ``entered_by := session_user``,
      ``entered_at := now()`` (to the millisecond, the precision a GeoPackage
      keeps, so that backups round-trip).
    * ``allocation_runs``, before insert: ``created_by``/``created_at`` likewise; a
      run inserted in another status than ``draft`` also gets
      ``status_changed_by``/``_at``, and only a user who may change a run's
      status (an approver, the owner) may insert one. Before update: a change of
      ``status`` is stamped the same way; otherwise the stamps keep their old
      values, and ``created_by``/``created_at`` never change.

    Idempotent: functions are replaced and triggers dropped and re-created.
    """
    s = quote_ident(schema)
    # a fixed search_path (pg_catalog first): these run as whoever writes, the owner
    # during a restore included, and must not pick up another role's operators
    path = f"SET search_path = pg_catalog, {s}, pg_temp"
    ms = "date_trunc('milliseconds', now())"
    lt, rt = STAMP_TRIGGERS["quota_ledger"], STAMP_TRIGGERS["allocation_runs"]
    return [
        f"""CREATE OR REPLACE FUNCTION {s}.landquota_stamp_ledger() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        BEGIN
          NEW.entered_by := session_user;
          NEW.entered_at := {ms};
          RETURN NEW;
        END $$""",
        f"DROP TRIGGER IF EXISTS {lt} ON {s}.quota_ledger",
        f"""CREATE TRIGGER {lt} BEFORE INSERT ON {s}.quota_ledger
        FOR EACH ROW EXECUTE FUNCTION {s}.landquota_stamp_ledger()""",
        f"""CREATE OR REPLACE FUNCTION {s}.landquota_stamp_run() RETURNS trigger
        LANGUAGE plpgsql {path} AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN
            NEW.created_by := session_user;
            NEW.created_at := {ms};
            IF NEW.status = 'draft' THEN
              NEW.status_changed_by := NULL;
              NEW.status_changed_at := NULL;
            ELSIF has_column_privilege(TG_RELID, 'status', 'UPDATE') THEN
              NEW.status_changed_by := session_user;
              NEW.status_changed_at := {ms};
            ELSE
              RAISE EXCEPTION
                'permission denied: only an approver may record a % run; insert it as draft',
                NEW.status USING ERRCODE = 'insufficient_privilege';
            END IF;
          ELSE
            NEW.created_by := OLD.created_by;
            NEW.created_at := OLD.created_at;
            IF NEW.status IS DISTINCT FROM OLD.status THEN
              NEW.status_changed_by := session_user;
              NEW.status_changed_at := {ms};
            ELSE
              NEW.status_changed_by := OLD.status_changed_by;
              NEW.status_changed_at := OLD.status_changed_at;
            END IF;
          END IF;
          RETURN NEW;
        END $$""",
        f"DROP TRIGGER IF EXISTS {rt} ON {s}.allocation_runs",
        f"""CREATE TRIGGER {rt} BEFORE INSERT OR UPDATE ON {s}.allocation_runs
        FOR EACH ROW EXECUTE FUNCTION {s}.landquota_stamp_run()""",
    ]
