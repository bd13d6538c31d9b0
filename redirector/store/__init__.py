"""The storage contract shared by the redirector and the admin: key names
(`keys`), the link record (`record`), the Lua scripts (`scripts`) and the client
factory (`connection`). The admin imports nothing else from `redirector`."""
