"""The page the channel tests connect, as the fake Graph API knows it."""

PAGE_ID = "1001"
PAGE_NAME = "Acme Support"
PAGE_TOKEN = "EAAPageToken-1001-secret"
PAGE_PICTURE = "https://cdn.example/acme.png"
