"""Commands from upstream that write to devices: policy, execution, audit, wire format."""
