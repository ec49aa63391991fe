import sys

from mock_sms.cli import main

sys.exit(main())
