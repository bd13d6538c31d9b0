"""The storage contract shared by the redirector and the admin: key names
(`keys`), the records (`record`), the Lua scripts (`scripts`, and the click flush's in
`flush`), campaigns' link counts read (`counts`), the secrets both apps share (`secret`) and
the client factory (`connection`). The admin imports nothing else from
`redirector`."""
