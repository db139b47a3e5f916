"""A first end-to-end pass through the in-process app: log in, create a VM, read it back."""


def test_admin_creates_and_reads_a_vm(api, admin_token):
    vm = api.create_vm(admin_token, name="web-1")
    assert vm["vmid"] >= 100 and vm["status"] == "unknown" and vm["sync_status"] == "pending"
    result = api.call("GET", f"/api/vms/{vm['id']}", admin_token)
    assert result.status_code == 200
    assert result.json["data"]["name"] == "web-1"
