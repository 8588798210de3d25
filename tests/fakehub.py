"""A tiny stand-in for the Hugging Face Hub, served on 127.0.0.1 for tests.

It answers what ``huggingface_hub.hf_hub_download`` asks: HEAD and GET on
``/{owner}/{name}/resolve/{revision}/{filename}`` (``/datasets/...`` for a dataset repo), with the
``X-Repo-Commit``, ``ETag`` and ``X-Error-Code`` headers the client reads; and for dataset repos what
``snapshot_download``, ``dataset_info`` and ``upload_folder`` ask: the revision's file list (with sizes), ``repos/create``, ``preupload``
(every file "regular"), ``commit`` (base64 files in NDJSON) and the file ``tree``. Dataset repos are kept as ``datasets/OWNER/NAME``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> files
        self.refs: dict[str, dict[str, str]] = {}  # repo -> branch/tag -> commit
        self.requests: list[str] = []
        self.delay_s = 0.0
        self._server: ThreadingHTTPServer | None = None

    def add_commit(self, repo_id: str, folder: Path | dict[str, bytes], ref: str = "main") -> str:
        files = folder if isinstance(folder, dict) else {p.relative_to(folder).as_posix(): p.read_bytes()
                                                         for p in sorted(Path(folder).rglob("*")) if p.is_file()}
        commit = hashlib.sha1(repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()
                              + repo_id.encode() + str(len(self.repos.get(repo_id, {}))).encode()).hexdigest()
        self.repos.setdefault(repo_id, {})[commit] = dict(files)
        self.refs.setdefault(repo_id, {})[ref] = commit
        return commit

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, value: object) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _api(self, parts: list[str]) -> None:
                """['', 'api', 'datasets', owner, name, 'revision'|'preupload'|'commit', revision] or repos/create."""
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if parts[2:3] == ["validate-yaml"]:  # a README.md's front matter: accepted
                    return self._json({"errors": [], "warnings": []})
                if parts[2:4] == ["repos", "create"]:
                    info = json.loads(body)
                    kind = info.get("type") or "model"
                    repo = f"{kind + 's/' if kind != 'model' else ''}{info.get('organization') or 'me'}/{info['name']}"
                    if repo not in hub.repos:
                        hub.add_commit(repo, {})
                    return self._json({"url": f"{hub.url}/{repo}"})
                if len(parts) == 5 and parts[2] == "datasets":  # dataset_info without a revision: main's
                    parts = [*parts, "revision", "main"]
                if len(parts) < 7 or parts[2] not in ("datasets", "models"):
                    return self._error(404, "RepoNotFound")
                prefix = "datasets/" if parts[2] == "datasets" else ""
                repo, action, revision = f"{prefix}{parts[3]}/{parts[4]}", parts[5], parts[6]
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound")
                commit = hub.refs[repo].get(revision, revision if revision in hub.repos[repo] else None)
                if commit is None:
                    return self._error(404, "RevisionNotFound")
                if action == "revision":
                    return self._json({"id": repo.split("/", 1)[1], "sha": commit, "private": False,
                                       "siblings": [{"rfilename": f, "size": len(d)}
                                                    for f, d in hub.repos[repo][commit].items()]})
                if action == "tree":
                    return self._json([{"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                                       for f, d in hub.repos[repo][commit].items()])
                if action == "preupload":
                    return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in json.loads(body)["files"]]})
                if action == "commit":
                    files = dict(hub.repos[repo][commit])
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item.get("key") == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    new = hub.add_commit(repo, files, ref=revision)
                    return self._json({"commitUrl": f"{hub.url}/{repo}/commit/{new}", "commitOid": new,
                                       "success": True})
                return self._error(404, "EntryNotFound")

            def _answer(self, body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if hub.delay_s:
                    threading.Event().wait(hub.delay_s)
                parts = [urllib.parse.unquote(p) for p in urllib.parse.urlparse(self.path).path.split("/")]
                if len(parts) > 2 and parts[1] == "api":
                    return self._api(parts)
                prefix = ""
                if len(parts) > 1 and parts[1] == "datasets":
                    prefix, parts = "datasets/", parts[:1] + parts[2:]
                # ['', owner, name, 'resolve', revision, filename...]
                if len(parts) < 6 or parts[3] != "resolve":
                    return self._error(404, "RepoNotFound")
                repo, revision, filename = f"{prefix}{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:])
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound")
                commit = hub.refs[repo].get(revision, revision if revision in hub.repos[repo] else None)
                if commit is None:
                    return self._error(404, "RevisionNotFound")
                files = hub.repos[repo][commit]
                if filename not in files:
                    return self._error(404, "EntryNotFound")
                data = files[filename]
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _error(self, status: int, code: str) -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def do_POST(self) -> None:  # noqa: N802
                self._answer(body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
