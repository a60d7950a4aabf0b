"""Hearth's desktop face: the tray icon, the chat window, settings and the privacy panel.

A process of its own (`hearth tray`) that talks to the daemon over its socket. Only this
package imports Qt; the daemon never does.
"""
