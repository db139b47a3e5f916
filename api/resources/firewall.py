"""`/api/vms/{id}/firewall` and `/api/firewall/{id}`: per-VM firewall rules, in order."""

from __future__ import annotations

import falcon

from api.resources import Op
from api.resources.vms import Nudge
from api.schemas import DeletedOut, Envelope, Paged, RuleOut, envelope, paged, rule_dict
from api.validation import PAGE_QUERY, PAGE_QUERY_SCHEMAS, page_param, parse_body
from controller import firewall
from controller.firewall_specs import RuleCreate, RuleUpdate
from controller.store import Store


class VmRules:
    docs = {
        "GET": Op("A VM's firewall rules, in order", Paged[list[RuleOut]], query=dict(PAGE_QUERY),
                  query_schemas=PAGE_QUERY_SCHEMAS),
        "POST": Op("Add a rule (appended unless position is given)", Envelope[RuleOut], RuleCreate,
                   status=201, errors=(400, 401, 404, 409)),
    }

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_get(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        page = page_param(req)
        with self.store.read() as session:
            rules, token = firewall.list_rules_page(session, req.context.actor, vm_id, page)
            resp.media = paged([rule_dict(rule) for rule in rules], page.size, token, include=page.paged)

    def on_post(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        spec = parse_body(req, RuleCreate)
        with self.store.write() as session:
            rule = firewall.create_rule(session, req.context.actor, vm_id, spec)
            resp.media = envelope(rule_dict(rule), "Firewall rule created successfully")
        resp.status = falcon.HTTP_201
        self.nudge(vm_id)


class RuleItem:
    docs = {
        "GET": Op("One firewall rule", Envelope[RuleOut]),
        "PUT": Op("Update a rule (any subset; position moves it)", Envelope[RuleOut], RuleUpdate,
                  errors=(400, 401, 404, 409)),
        "DELETE": Op("Delete a rule", Envelope[DeletedOut], errors=(401, 404, 409)),
    }

    def __init__(self, store: Store, nudge: Nudge) -> None:
        self.store, self.nudge = store, nudge

    def on_get(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        with self.store.read() as session:
            rule, _vm = firewall.get_rule(session, req.context.actor, rule_id)
            resp.media = envelope(rule_dict(rule))

    def on_put(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        update = parse_body(req, RuleUpdate)
        with self.store.write() as session:
            rule = firewall.update_rule(session, req.context.actor, rule_id, update)
            resp.media = envelope(rule_dict(rule), "Firewall rule updated successfully")
        self.nudge(rule.vm_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, rule_id: str) -> None:
        with self.store.write() as session:
            vm_id = firewall.delete_rule(session, req.context.actor, rule_id)
        resp.media = envelope({"deleted": True}, "Firewall rule deleted successfully")
        self.nudge(vm_id)
