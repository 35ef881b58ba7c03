"""Threat intelligence: indicators in (STIX 2.1, MISP, TAXII 2.1), matched on the stream, shared by TLP.

Modules, in flow order:
- model.py: `Indicator`, its type and TLP marking, value normalisation, `ImportResult`.
- stix.py: STIX 2.1 bundles in (stix2 library, pattern visitor) and out.
- misp.py: MISP events in (attributes with `to_ids`, tags) and out.
- sources.py: files of either format (and MISP feed manifests), recognised by content.
- taxii.py: TAXII 2.1 collections read with taxii2-client.
- sharing.py: who sees an indicator and a sighting (TLP over the tenant tree).
- match.py: `IntelMatcher.process(events) -> alerts`, hash/suffix/prefix lookups.
- store.py: `IntelStore`, indicators and sightings in SQLite, every read scoped.
- feed.py: `IntelFeed`, the matcher kept current with the store, for the stream.
"""

from detections.intel.feed import IntelFeed
from detections.intel.match import IndicatorIndex, IntelMatcher, Match, indicator_id_of
from detections.intel.misp import export_misp, import_misp
from detections.intel.model import ImportOptions, ImportResult, Indicator, IndicatorType, IntelError, Tlp
from detections.intel.sharing import can_see, near_tenants
from detections.intel.sources import IntelFormat, detect_format, import_document, import_file, import_paths
from detections.intel.stix import export_stix, import_stix
from detections.intel.store import IndicatorQuery, IntelStore, Sighting, SightingSummary, sightings_of

__all__ = [
    "ImportOptions", "ImportResult", "IndicatorIndex", "Indicator", "IndicatorQuery", "IndicatorType",
    "IntelError", "IntelFeed", "IntelFormat", "IntelMatcher", "IntelStore", "Match", "Sighting",
    "SightingSummary", "Tlp",
    "can_see", "detect_format", "export_misp", "export_stix", "import_document", "import_file", "import_misp",
    "import_paths", "import_stix", "indicator_id_of", "near_tenants", "sightings_of",
]
