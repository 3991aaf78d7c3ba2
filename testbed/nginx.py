"""nginx run by a test as a plain process on loopback: the skeleton of its nginx.conf."""

from __future__ import annotations

_SKELETON = """\
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log ACCESS_LOG;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
"""


def conf_template(http: str, access_log: str = "off") -> str:
    """A whole nginx.conf as a str.format template: everything lives under {prefix} (pid, logs, temp
    folders in {prefix}/tmp, which the caller creates), and `http` is the body of the http block
    (itself a template: braces of nginx syntax doubled, fields such as {port} left to the caller)."""
    return _SKELETON.replace("ACCESS_LOG", access_log) + http.rstrip("\n") + "\n}}\n"
