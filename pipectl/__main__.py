from pipectl.cli import main

raise SystemExit(main())
