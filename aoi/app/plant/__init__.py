"""Plant integration (issue 17): MQTT, IPC-CFX and the OPC UA Machine Vision server.

Each publisher reads the station's journal through its own :class:`~aoi.storage.outbox.Outbox`;
:func:`aoi.app.plant.wiring.open_plant` opens the ones the station config names.
"""
