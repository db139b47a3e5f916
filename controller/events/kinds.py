"""The kinds of feed rows. Webhook event names are a subset; `vm.changed` and `stats` are stream-only."""

VM_CREATED = "vm.created"  # the VM's row was created (API or manifest)
VM_CHANGED = "vm.changed"  # anything visible in the VM object (spec or status), its snapshots or rules
VM_SYNCED = "vm.synced"  # sync_status became synced
VM_ERROR = "vm.error"  # sync_status became error
VM_DRIFT = "vm.drift"  # the reconciler found Proxmox drifted from a synced VM's spec (and corrects it)
VM_DELETED = "vm.deleted"  # the VM is gone (destroyed in Proxmox, row dropped)
SNAPSHOT_CREATED = "snapshot.created"  # a snapshot was requested (its row exists)
SNAPSHOT_DELETED = "snapshot.deleted"  # a snapshot is gone (deleted in Proxmox, row dropped)
STATS = "stats"  # a stats sample was stored

WEBHOOK_EVENTS = (VM_CREATED, VM_SYNCED, VM_ERROR, VM_DRIFT, VM_DELETED, SNAPSHOT_CREATED, SNAPSHOT_DELETED)
