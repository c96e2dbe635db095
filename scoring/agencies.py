"""Reg B Appendix A: the Federal agency named in the ECOA notice, by creditor type, versioned by date.

12 CFR 1002.9(a)(2) and (b)(1): an adverse action notice names "the Federal agency that administers
compliance with respect to the creditor", with the name and address "as specified by the appropriate
agency or agencies listed in appendix A". The list changes (88 FR 16531, 20 Mar 2023, corrected by
88 FR 58065, 25 Aug 2023; mandatory compliance from 20 Mar 2024), and a notice must be reproducible
exactly for the record-retention period (1002.12(b)), so the table is versioned: ``agency_for`` picks the
row in effect on the notice date, and every row says where its text comes from and whether it was
confirmed.

Sources, in order of authority:
* the 2022 eRegs XML (``regulatory-verbatim.md`` [1002-A-...]), for the 2011 table;
* the checklist (``regulatory-checklist.md`` item 0.5), for the current CFPB and FTC rows (confirmed);
* secondary sources quoting the 2023 final rule (a bank-association Q&A quoting the FDIC amendment, a
  credit-union consultant for NCUA, OCC bulletin summaries for the OCC box), marked ``confirmed=False``.

Rows marked ``confirmed=False`` must be checked against the current eCFR before a creditor of that type
sends notices; ``agency_for`` logs a warning when it returns one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgencyContact:
    name: str
    address: str

    @property
    def ecoa_text(self) -> str:
        """Name and address as they go into the ECOA notice sentence."""
        return f"{self.name}, {self.address}"


@dataclass(frozen=True)
class Agency:
    """The agency (or agencies) a creditor of one type lists in its ECOA notice."""

    creditor_type: str
    description: str  # the Appendix A wording of the creditor class
    contacts: tuple[AgencyContact, ...]
    appendix_a_item: str
    table_version: str
    confirmed: bool
    source: str

    def __post_init__(self) -> None:
        if not self.contacts:
            raise ValueError(f"agency row {self.creditor_type!r} has no contact")

    @property
    def name(self) -> str:
        return self.contacts[0].name

    @property
    def address(self) -> str:
        return self.contacts[0].address

    @property
    def ecoa_text(self) -> str:
        """What replaces the bracket in the 1002.9(b)(1) notice; two agencies are joined by "and"."""
        return " and ".join(contact.ecoa_text for contact in self.contacts)


@dataclass(frozen=True)
class AgencyTable:
    table_version: str
    effective: dt.date  # the date from which creditors must use this table
    authority: str
    rows: Mapping[str, Agency]


# The creditor classes of Appendix A, keyed by a short creditor type. "bank_over_10b" covers banks,
# savings associations and credit unions with total assets over $10 billion and their depository
# affiliates; their non-depository affiliates list the CFPB and the FTC.
CREDITOR_TYPES: dict[str, tuple[str, str]] = {
    "bank_over_10b": ("1", "Banks, savings associations, and credit unions with total assets of over $10 billion "
                           "and their affiliates"),
    "nonbank_affiliate_of_bank_over_10b": ("1", "Affiliates that are not banks, savings associations, or credit "
                                                "unions, of banks, savings associations, and credit unions with "
                                                "total assets of over $10 billion"),
    "national_bank": ("2.a", "National banks, Federal savings associations, and Federal branches and Federal "
                             "agencies of foreign banks"),
    "state_member_bank": ("2.b", "State member banks, branches and agencies of foreign banks (other than Federal "
                                 "branches, Federal agencies, and insured state branches of foreign banks), "
                                 "commercial lending companies owned or controlled by foreign banks, and "
                                 "organizations operating under section 25 or 25A of the Federal Reserve Act"),
    "state_nonmember_bank": ("2.c", "Nonmember Insured Banks, Insured State Branches of Foreign Banks, and Insured "
                                    "State Savings Associations"),
    "federal_credit_union": ("2.d", "Federal Credit Unions"),
    "air_carrier": ("3", "Air carriers"),
    "surface_transportation": ("4", "Creditors Subject to Surface Transportation Board"),
    "packers_and_stockyards": ("5", "Creditors Subject to Packers and Stockyards Act"),
    "sbic": ("6", "Small Business Investment Companies"),
    "broker_dealer": ("7", "Brokers and Dealers"),
    "farm_credit": ("8", "Federal Land Banks, Federal Land Bank Associations, Federal Intermediate Credit Banks, "
                         "and Production Credit Associations"),
    "nonbank": ("9", "Retailers, Finance Companies, and All Other Creditors Not Listed Above"),
}


def _table(version: str, effective: dt.date, authority: str,
           rows: Mapping[str, tuple[tuple[AgencyContact, ...], bool, str]]) -> AgencyTable:
    missing = set(CREDITOR_TYPES) - set(rows)
    if missing:
        raise ValueError(f"agency table {version} lacks creditor types {sorted(missing)}")
    built = {
        creditor_type: Agency(creditor_type=creditor_type, description=CREDITOR_TYPES[creditor_type][1],
                              contacts=contacts, appendix_a_item=CREDITOR_TYPES[creditor_type][0],
                              table_version=version, confirmed=confirmed, source=source)
        for creditor_type, (contacts, confirmed, source) in rows.items()
    }
    return AgencyTable(table_version=version, effective=effective, authority=authority, rows=built)


_XML = "2022 eRegs XML, regulatory-verbatim.md"

# --- 2011 table: Appendix A as in the 2022 eRegs XML (before the 2023 amendments) ---------------------
_CFPB_2011 = AgencyContact("Bureau of Consumer Financial Protection", "1700 G Street NW., Washington DC 20006")
_FTC_2011 = AgencyContact("FTC Regional Office for region in which the creditor operates or Federal Trade "
                          "Commission", "Equal Credit Opportunity, Washington, DC 20580")
_FED = AgencyContact("Federal Reserve Consumer Help Center", "P.O. Box 1200, Minneapolis, MN 55480")
_FCA = AgencyContact("Farm Credit Administration", "1501 Farm Credit Drive, McLean, VA 22102-5090")

TABLE_2011 = _table(
    "2011-12-30",
    # The CFPB's Reg B interim final rule (76 FR 79442) took effect 30 Dec 2011. UNCONFIRMED from the docs:
    # the date is not in regulatory-verbatim.md.
    dt.date(2011, 12, 30),
    "12 CFR 1002 Appendix A as published by 76 FR 79442 (text from the 2022 eRegs XML)",
    {
        "bank_over_10b": ((_CFPB_2011,), True, _XML),
        "nonbank_affiliate_of_bank_over_10b": ((_CFPB_2011, _FTC_2011), True, _XML),
        "national_bank": ((AgencyContact("Office of the Controller of the Currency, Customer Assistance Group",
                                         "1301 McKinney Street, Suite 3450, Houston, TX 77010-9050"),), True, _XML),
        "state_member_bank": ((_FED,), True, _XML),
        "state_nonmember_bank": ((AgencyContact("FDIC Consumer Response Center",
                                                "1100 Walnut Street, Box #11, Kansas City, MO 64106"),), True, _XML),
        "federal_credit_union": ((AgencyContact("National Credit Union Administration, Office of Consumer "
                                                "Protection", "1775 Duke Street, Alexandria, VA 22314"),), True, _XML),
        "air_carrier": ((AgencyContact("Assistant General Counsel for Aviation Enforcement and Proceedings, "
                                       "Department of Transportation",
                                       "400 Seventh Street SW., Washington, DC 20590"),), True, _XML),
        "surface_transportation": ((AgencyContact("Creditors Office of Proceedings, Surface Transportation Board, "
                                                  "Department of Transportation",
                                                  "1925 K Street NW., Washington, DC 20423"),), True, _XML),
        # Appendix A gives no address here: the creditor fills in its area supervisor's, so rendering a notice
        # from this row fails until it does (audit.notices requires an agency address).
        "packers_and_stockyards": ((AgencyContact("Nearest Packers and Stockyards Administration area supervisor",
                                                  ""),), True, _XML),
        "sbic": ((AgencyContact("Associate Deputy Administrator for Capital Access, United States Small Business "
                                "Administration", "409 Third Street SW., 8th Floor, Washington, DC 20416"),),
                 True, _XML),
        "broker_dealer": ((AgencyContact("Securities and Exchange Commission", "Washington, DC 20549"),), True, _XML),
        "farm_credit": ((_FCA,), True, _XML),
        "nonbank": ((_FTC_2011,), True, _XML),
    },
)

# --- 2024 table: Appendix A as amended by 88 FR 16531 and corrected by 88 FR 58065 --------------------
# Effective 19 Apr 2023 (corrections 25 Sep 2023); creditors could use it from then and must from 20 Mar 2024.
_CFPB = AgencyContact("Bureau of Consumer Financial Protection", "1700 G Street NW, Washington DC 20552")
_FTC = AgencyContact("Federal Trade Commission", "Consumer Response Center, 600 Pennsylvania Avenue NW, "
                                                 "Washington, DC 20580")
_CHECKLIST = "regulatory-checklist.md item 0.5 (88 FR 16531, 88 FR 58065)"
_UNCONFIRMED = "UNCONFIRMED: amended by 88 FR 16531; current wording not in the docs"

TABLE_2024 = _table(
    "2024-03-20",
    dt.date(2024, 3, 20),
    "12 CFR 1002 Appendix A as amended by 88 FR 16531 (20 Mar 2023) and 88 FR 58065 (25 Aug 2023)",
    {
        "bank_over_10b": ((_CFPB,), True, _CHECKLIST),
        "nonbank_affiliate_of_bank_over_10b": ((_CFPB, _FTC), True, _CHECKLIST),
        # UNCONFIRMED: the OCC box (OCC Bulletin 2022-15, repeated in bank-compliance summaries); the 2023 rule
        # also fixed the "Controller" misspelling. Check against the eCFR.
        "national_bank": ((AgencyContact("Office of the Comptroller of the Currency, Customer Assistance Group",
                                         "P.O. Box 53570, Houston, TX 77052"),), False,
                          "UNCONFIRMED: OCC Bulletin 2022-15 via secondary sources"),
        # The 2023 rule did not list the Federal Reserve among the agencies whose contact changed (secondary
        # summary of the rule), so the 2011 text stands. UNCONFIRMED against the eCFR.
        "state_member_bank": ((_FED,), False, "UNCONFIRMED: unchanged per a secondary summary of 88 FR 16531"),
        # A bank-association Q&A quotes the final rule's new paragraph 2(c) text; UNCONFIRMED against the eCFR.
        "state_nonmember_bank": ((AgencyContact("Division of Depositor and Consumer Protection, National Center for "
                                                "Consumer and Depositor Assistance, Federal Deposit Insurance "
                                                "Corporation", "1100 Walnut Street, Box #11, Kansas City, MO 64106"),),
                                 False, "UNCONFIRMED: 88 FR 16531 paragraph 2(c) as quoted by a secondary source"),
        # A credit-union consultant's summary of the 2023 rule; UNCONFIRMED against the eCFR.
        "federal_credit_union": ((AgencyContact("National Credit Union Administration, Office of Consumer Financial "
                                                "Protection", "1775 Duke Street, Alexandria, VA 22314"),), False,
                                 "UNCONFIRMED: secondary summary of 88 FR 16531"),
        # UNCONFIRMED rows below: the 2023 rule changed the DOT, STB, USDA, SBA and SEC contacts, and no source
        # here gives the new wording. These are the agencies' current headquarters addresses as best known;
        # check every one against the eCFR before use.
        "air_carrier": ((AgencyContact("Assistant General Counsel for Aviation Enforcement and Proceedings, "
                                       "Department of Transportation",
                                       "1200 New Jersey Avenue SE, Washington, DC 20590"),), False, _UNCONFIRMED),
        "surface_transportation": ((AgencyContact("Office of Proceedings, Surface Transportation Board",
                                                  "395 E Street SW, Washington, DC 20423"),), False, _UNCONFIRMED),
        "packers_and_stockyards": ((AgencyContact("Nearest Packers and Stockyards Division regional office, "
                                                  "United States Department of Agriculture", ""),), False,
                                   _UNCONFIRMED),
        "sbic": ((AgencyContact("Office of Investment and Innovation, United States Small Business Administration",
                                "409 Third Street SW, Washington, DC 20416"),), False, _UNCONFIRMED),
        "broker_dealer": ((AgencyContact("Securities and Exchange Commission", "100 F Street NE, Washington, DC "
                                                                               "20549"),), False, _UNCONFIRMED),
        # Not among the agencies the 2023 rule changed (secondary summary); the 2011 text stands. UNCONFIRMED.
        "farm_credit": ((_FCA,), False, "UNCONFIRMED: unchanged per a secondary summary of 88 FR 16531"),
        "nonbank": ((_FTC,), True, _CHECKLIST),
    },
)

# Oldest first; agency_for takes the last table whose effective date is on or before the notice date.
AGENCY_TABLES: tuple[AgencyTable, ...] = (TABLE_2011, TABLE_2024)
CURRENT_TABLE = AGENCY_TABLES[-1]


def agency_table_for(on_date: dt.date) -> AgencyTable:
    """The Appendix A table creditors had to use on a date."""
    if isinstance(on_date, dt.datetime):
        on_date = on_date.date()
    in_force = [table for table in AGENCY_TABLES if table.effective <= on_date]
    if not in_force:
        raise LookupError(f"no Reg B Appendix A table in this module is in force on {on_date.isoformat()}")
    return in_force[-1]


def agency_for(creditor_type: str, on_date: dt.date) -> Agency:
    """The agency a creditor of ``creditor_type`` names in a notice dated ``on_date`` (Reg B Appendix A)."""
    if creditor_type not in CREDITOR_TYPES:
        raise KeyError(f"unknown creditor type {creditor_type!r}; one of {sorted(CREDITOR_TYPES)}")
    agency = agency_table_for(on_date).rows[creditor_type]
    if not agency.confirmed:
        logger.warning("Appendix A row %r (table %s) is not confirmed against the eCFR: %s", creditor_type,
                       agency.table_version, agency.source)
    return agency
