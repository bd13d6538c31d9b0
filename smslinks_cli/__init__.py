"""`smslinks`: the admin API from the command line. An HTTP client of the API only (it imports
neither admin nor redirector), configured by SMSLINKS_URL and SMSLINKS_KEY."""
