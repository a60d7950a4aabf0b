"""A Secret Service that takes the bus name and never answers (run as a script by tests).

It stands for a stuck gnome-keyring: the D-Bus daemon says the service is there, so
keyring picks it, and every call to it waits. Each method call received is printed,
one member name per line, so a test knows the daemon did ask.
"""

from __future__ import annotations

from jeepney import HeaderFields, MessageType
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

NAME = "org.freedesktop.secrets"


def main() -> None:
    conn = open_dbus_connection(bus="SESSION")
    owned = conn.send_and_get_reply(message_bus.RequestName(NAME))
    print(f"owned {owned.body[0]}", flush=True)  # 1: the primary owner
    while True:
        msg = conn.receive()
        if msg.header.message_type == MessageType.method_call:
            print(msg.header.fields.get(HeaderFields.member), flush=True)


if __name__ == "__main__":
    main()
