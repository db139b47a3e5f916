"""`/api/tokens`, `/api/tokens/{id}`: the caller's API tokens (create shows the secret once)."""

from __future__ import annotations

import falcon

from api.resources import Op
from api.schemas import DeletedOut, Envelope, TokenCreatedOut, TokenOut, envelope, token_dict
from api.validation import parse_body
from controller import tokens
from controller.account_specs import TokenCreate
from controller.store import Store


class TokenCollection:
    docs = {
        "GET": Op("The caller's API tokens (never their secrets)", Envelope[list[TokenOut]]),
        "POST": Op("Create an API token; the answer carries the token once", Envelope[TokenCreatedOut],
                   TokenCreate, status=201, errors=(400, 401, 403)),
    }

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.store.read() as session:
            resp.media = envelope([token_dict(row) for row in tokens.list_tokens(session, req.context.actor)])

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        spec = parse_body(req, TokenCreate)
        with self.store.write() as session:
            row, secret = tokens.create(session, req.context.actor, spec)
            resp.media = envelope({**token_dict(row), "token": secret},
                                  "API token created; store it now, it is not shown again")
        resp.status = falcon.HTTP_201


class TokenItem:
    docs = {"DELETE": Op("Revoke an API token", Envelope[DeletedOut])}

    def __init__(self, store: Store) -> None:
        self.store = store

    def on_delete(self, req: falcon.Request, resp: falcon.Response, token_id: str) -> None:
        with self.store.write() as session:
            tokens.delete_token(session, req.context.actor, token_id)
        resp.media = envelope({"deleted": True}, "API token revoked")
