from sslkit.cli import main

raise SystemExit(main())
