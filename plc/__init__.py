"""The Modbus TCP link to the line PLC: register map, handshake, both roles, soft PLC.

See plc/README.md for the register map and the handshake as a PLC programmer needs them.
"""
