package sunspec

// The model tables below were written from the SunSpec model definitions
// (github.com/sunspec/models, json/model_<id>.json): point names, order,
// sizes, types, scale-factor references, units, mandatory flags and enum
// symbols. Offsets are not written out: like the JSON, they follow from the
// sizes, and newModel computes them. Model 112 has no JSON in our reference
// set; it is the float inverter layout (identical for 111 and 113) with the
// split-phase mandatory points of model 102.

// opState holds the operating-state symbols shared by the inverter models
// (St) and the MPPT modules (DCSt, which adds TEST and RESERVED_10).
var opState = []Symbol{
	{"OFF", 1}, {"SLEEPING", 2}, {"STARTING", 3}, {"MPPT", 4},
	{"THROTTLED", 5}, {"SHUTTING_DOWN", 6}, {"FAULT", 7}, {"STANDBY", 8},
}

// inverterEvents are the bits of Evt1 in models 101–103 and 111–113.
var inverterEvents = []Symbol{
	{"GROUND_FAULT", 0}, {"DC_OVER_VOLT", 1}, {"AC_DISCONNECT", 2},
	{"DC_DISCONNECT", 3}, {"GRID_DISCONNECT", 4}, {"CABINET_OPEN", 5},
	{"MANUAL_SHUTDOWN", 6}, {"OVER_TEMP", 7}, {"OVER_FREQUENCY", 8},
	{"UNDER_FREQUENCY", 9}, {"AC_OVER_VOLT", 10}, {"AC_UNDER_VOLT", 11},
	{"BLOWN_STRING_FUSE", 12}, {"UNDER_TEMP", 13}, {"MEMORY_LOSS", 14},
	{"HW_TEST_FAILURE", 15},
}

// mpptEvents are the bits of Evt and DCEvt in model 160.
var mpptEvents = []Symbol{
	{"GROUND_FAULT", 0}, {"INPUT_OVER_VOLTAGE", 1}, {"RESERVED_2", 2},
	{"DC_DISCONNECT", 3}, {"RESERVED_4", 4}, {"CABINET_OPEN", 5},
	{"MANUAL_SHUTDOWN", 6}, {"OVER_TEMP", 7}, {"RESERVED_8", 8},
	{"RESERVED_9", 9}, {"RESERVED_10", 10}, {"RESERVED_11", 11},
	{"BLOWN_FUSE", 12}, {"UNDER_TEMP", 13}, {"MEMORY_LOSS", 14},
	{"ARC_DETECTION", 15}, {"RESERVED_16", 16}, {"RESERVED_17", 17},
	{"RESERVED_18", 18}, {"RESERVED_19", 19}, {"TEST_FAILED", 20},
	{"INPUT_UNDER_VOLTAGE", 21}, {"INPUT_OVER_CURRENT", 22},
}

// pt is a compact point constructor for the tables; m marks mandatory.
func pt(name string, t Type, size uint16, sf, units string, m bool) Point {
	return Point{Name: name, Type: t, Size: size, SF: sf, Units: units, Mandatory: m}
}

func withSymbols(p Point, s []Symbol) Point {
	p.Symbols = s
	return p
}

var common = newModel(1, "common", []Point{
	pt("Mn", String, 16, "", "", true),
	pt("Md", String, 16, "", "", true),
	pt("Opt", String, 8, "", "", false),
	pt("Vr", String, 8, "", "", false),
	pt("SN", String, 16, "", "", true),
	pt("DA", Uint16, 1, "", "", false),
	pt("Pad", Pad, 1, "", "", false),
}, nil)

// intInverter builds models 101–103: phases is 1, 2 or 3 and decides which
// per-phase points are mandatory.
func intInverter(id uint16, name string, phases int) *ModelDef {
	return newModel(id, name, []Point{
		pt("A", Uint16, 1, "A_SF", "A", true),
		pt("AphA", Uint16, 1, "A_SF", "A", true),
		pt("AphB", Uint16, 1, "A_SF", "A", phases >= 2),
		pt("AphC", Uint16, 1, "A_SF", "A", phases >= 3),
		pt("A_SF", SunSSF, 1, "", "", true),
		pt("PPVphAB", Uint16, 1, "V_SF", "V", false),
		pt("PPVphBC", Uint16, 1, "V_SF", "V", false),
		pt("PPVphCA", Uint16, 1, "V_SF", "V", false),
		pt("PhVphA", Uint16, 1, "V_SF", "V", true),
		pt("PhVphB", Uint16, 1, "V_SF", "V", phases >= 2),
		pt("PhVphC", Uint16, 1, "V_SF", "V", phases >= 3),
		pt("V_SF", SunSSF, 1, "", "", true),
		pt("W", Int16, 1, "W_SF", "W", true),
		pt("W_SF", SunSSF, 1, "", "", true),
		pt("Hz", Uint16, 1, "Hz_SF", "Hz", true),
		pt("Hz_SF", SunSSF, 1, "", "", true),
		pt("VA", Int16, 1, "VA_SF", "VA", false),
		pt("VA_SF", SunSSF, 1, "", "", false),
		pt("VAr", Int16, 1, "VAr_SF", "var", false),
		pt("VAr_SF", SunSSF, 1, "", "", false),
		pt("PF", Int16, 1, "PF_SF", "Pct", false),
		pt("PF_SF", SunSSF, 1, "", "", false),
		pt("WH", Acc32, 2, "WH_SF", "Wh", true),
		pt("WH_SF", SunSSF, 1, "", "", true),
		pt("DCA", Uint16, 1, "DCA_SF", "A", false),
		pt("DCA_SF", SunSSF, 1, "", "", false),
		pt("DCV", Uint16, 1, "DCV_SF", "V", false),
		pt("DCV_SF", SunSSF, 1, "", "", false),
		pt("DCW", Int16, 1, "DCW_SF", "W", false),
		pt("DCW_SF", SunSSF, 1, "", "", false),
		pt("TmpCab", Int16, 1, "Tmp_SF", "C", true),
		pt("TmpSnk", Int16, 1, "Tmp_SF", "C", false),
		pt("TmpTrns", Int16, 1, "Tmp_SF", "C", false),
		pt("TmpOt", Int16, 1, "Tmp_SF", "C", false),
		pt("Tmp_SF", SunSSF, 1, "", "", true),
		withSymbols(pt("St", Enum16, 1, "", "", true), opState),
		pt("StVnd", Enum16, 1, "", "", false),
		withSymbols(pt("Evt1", Bitfield32, 2, "", "", true), inverterEvents),
		pt("Evt2", Bitfield32, 2, "", "", true),
		pt("EvtVnd1", Bitfield32, 2, "", "", false),
		pt("EvtVnd2", Bitfield32, 2, "", "", false),
		pt("EvtVnd3", Bitfield32, 2, "", "", false),
		pt("EvtVnd4", Bitfield32, 2, "", "", false),
	}, nil)
}

// floatInverter builds models 111–113, the float32 variants without scale
// factors.
func floatInverter(id uint16, name string, phases int) *ModelDef {
	f := func(n, units string, m bool) Point { return pt(n, Float32, 2, "", units, m) }
	return newModel(id, name, []Point{
		f("A", "A", true),
		f("AphA", "A", true),
		f("AphB", "A", phases >= 2),
		f("AphC", "A", phases >= 3),
		f("PPVphAB", "V", false),
		f("PPVphBC", "V", false),
		f("PPVphCA", "V", false),
		f("PhVphA", "V", true),
		f("PhVphB", "V", phases >= 2),
		f("PhVphC", "V", phases >= 3),
		f("W", "W", true),
		f("Hz", "Hz", true),
		f("VA", "VA", false),
		f("VAr", "var", false),
		f("PF", "Pct", false),
		f("WH", "Wh", true),
		f("DCA", "A", false),
		f("DCV", "V", false),
		f("DCW", "W", false),
		f("TmpCab", "C", true),
		f("TmpSnk", "C", false),
		f("TmpTrns", "C", false),
		f("TmpOt", "C", false),
		// The published model 111 JSON prefixes these symbols with "gg";
		// that is an artefact of the file, the names are the same as in
		// every other inverter model.
		withSymbols(pt("St", Enum16, 1, "", "", true), opState),
		pt("StVnd", Enum16, 1, "", "", false),
		withSymbols(pt("Evt1", Bitfield32, 2, "", "", true), inverterEvents),
		pt("Evt2", Bitfield32, 2, "", "", true),
		pt("EvtVnd1", Bitfield32, 2, "", "", false),
		pt("EvtVnd2", Bitfield32, 2, "", "", false),
		pt("EvtVnd3", Bitfield32, 2, "", "", false),
		pt("EvtVnd4", Bitfield32, 2, "", "", false),
	}, nil)
}

var mppt = newModel(160, "mppt", []Point{
	pt("DCA_SF", SunSSF, 1, "", "", false),
	pt("DCV_SF", SunSSF, 1, "", "", false),
	pt("DCW_SF", SunSSF, 1, "", "", false),
	pt("DCWH_SF", SunSSF, 1, "", "", false),
	withSymbols(pt("Evt", Bitfield32, 2, "", "", false), mpptEvents),
	pt("N", Count, 1, "", "", false),
	pt("TmsPer", Uint16, 1, "", "", false),
}, newGroup("module", []Point{
	pt("ID", Uint16, 1, "", "", false),
	pt("IDStr", String, 8, "", "", false),
	pt("DCA", Uint16, 1, "DCA_SF", "A", false),
	pt("DCV", Uint16, 1, "DCV_SF", "V", false),
	pt("DCW", Uint16, 1, "DCW_SF", "W", false),
	pt("DCWH", Acc32, 2, "DCWH_SF", "Wh", false),
	pt("Tms", Uint32, 2, "", "Secs", false),
	pt("Tmp", Int16, 1, "", "C", false),
	withSymbols(pt("DCSt", Enum16, 1, "", "", false),
		append(append([]Symbol(nil), opState...), Symbol{"TEST", 9}, Symbol{"RESERVED_10", 10})),
	withSymbols(pt("DCEvt", Bitfield32, 2, "", "", false), mpptEvents),
}))

var defs = map[uint16]*ModelDef{
	1:   common,
	101: intInverter(101, "inverter_single_phase", 1),
	102: intInverter(102, "inverter_split_phase", 2),
	103: intInverter(103, "inverter_three_phase", 3),
	111: floatInverter(111, "inverter_single_phase_float", 1),
	112: floatInverter(112, "inverter_split_phase_float", 2),
	113: floatInverter(113, "inverter_three_phase_float", 3),
	160: mppt,
}
