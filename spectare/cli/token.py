"""`spectare token ...`: API tokens (see `spectare.core.tokens`)."""

from datetime import UTC, datetime

import click

from spectare.core.tokens import SCOPES, TokenStore

from .common import print_json, print_table, with_bus


@click.group()
def token() -> None:
    """Create, list and revoke tokens for the HTTP API."""


@token.command("create")
@click.option("--scope", type=click.Choice(SCOPES), required=True,
              help="read: every GET endpoint and clip export; admin: also add, change and remove cameras.")
@click.option("--name", default="", help="What the token is for (shown by `spectare token list`).")
def create(scope: str, name: str) -> None:
    """Create a token and print it once: it is stored only as a hash.

    \b
    TOKEN=$(spectare token create --scope read --name dashboard)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:PORT/stats
    """
    if len(name) > 100:
        raise click.BadParameter("at most 100 characters", param_hint="--name")

    async def work(js, settings):
        return await (await TokenStore.open(js, settings)).create(scope, name)

    made = with_bus(work)
    click.echo(made.token)
    click.echo(f"created {scope} token {made.record.id}; it is shown only now", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List tokens (id, scope, name, creation time; never the tokens themselves)."""

    async def work(js, settings):
        return await (await TokenStore.open(js, settings)).list()

    records = with_bus(work)
    views = [{"id": r.id, "scope": r.scope, "name": r.name,
              "created_at": datetime.fromtimestamp(r.created_at, UTC).isoformat(timespec="seconds")} for r in records]
    if as_json:
        print_json(views)
    elif not views:
        click.echo("no tokens; create one with `spectare token create --scope read`")
    else:
        print_table(["ID", "SCOPE", "CREATED", "NAME"], [[v["id"], v["scope"], v["created_at"], v["name"]]
                                                         for v in views])


@token.command("revoke")
@click.argument("token_id", metavar="ID")
def revoke(token_id: str) -> None:
    """Revoke token ID at once (`spectare token list` shows the ids)."""

    async def work(js, settings):
        return await (await TokenStore.open(js, settings)).revoke(token_id)

    record = with_bus(work)
    click.echo(f"revoked {record.scope} token {record.id}" + (f" ({record.name})" if record.name else ""))
