// Runs the npm Dataverse client dynamics-web-api against a lakelink
// emulator and prints one JSON document: {"results": [...]}, one entry per
// call, {"name", "value"} when the call resolved and {"name", "error":
// {"status", "code", "message"}} when it was rejected. The script asserts
// nothing itself: webapi_test.go checks every entry, so a wrong answer
// fails the Go test with the call's name.
//
// Environment: LAKELINK_ORG_URL (the emulator's organization URL) and
// LAKELINK_TOKEN (the bearer token it was started with). The module is
// found through NODE_PATH (the cache folder scripts/test-deps.sh fills).
"use strict";

const { DynamicsWebApi } = require("dynamics-web-api");

const orgURL = process.env.LAKELINK_ORG_URL;
const token = process.env.LAKELINK_TOKEN;
if (!orgURL || !token) {
	console.error("client.js: set LAKELINK_ORG_URL and LAKELINK_TOKEN");
	process.exit(2);
}

const config = { serverUrl: orgURL, onTokenRefresh: async () => token };
const api = new DynamicsWebApi(config);
const byEntityName = new DynamicsWebApi({ ...config, useEntityNames: true });
const badToken = new DynamicsWebApi({ serverUrl: orgURL, onTokenRefresh: async () => "wrong-token" });

const results = [];

function describe(err) {
	if (Array.isArray(err)) {
		// A failed batch rejects with the parsed responses of its parts.
		return { batch: err.map((e) => (e instanceof Error ? describe(e) : e)) };
	}
	// An error inside a batch keeps the OData body under "error".
	const body = err.error && typeof err.error === "object" ? err.error : err;
	return { status: err.status, code: body.code, message: body.message };
}

async function call(name, fn) {
	try {
		const value = await fn();
		results.push({ name, value: value === undefined ? null : value });
		return value;
	} catch (err) {
		results.push({ name, error: describe(err) });
		return undefined;
	}
}

// Keeps the fields a check needs, so the output does not depend on
// annotations the test does not look at.
function pick(row, ...fields) {
	if (!row) return row;
	const out = {};
	for (const f of fields) out[f] = row[f] === undefined ? "(absent)" : row[f];
	return out;
}

const names = (resp) => resp.value.map((r) => r.name).sort();

async function main() {
	// Identity and metadata.
	await call("whoami", async () => pick(await api.callFunction("WhoAmI"), "UserId", "BusinessUnitId", "OrganizationId"));
	await call("retrieveEntities", async () => {
		const r = await api.retrieveEntities({ select: ["LogicalName", "EntitySetName"] });
		return r.value.map((e) => e.LogicalName + "=" + e.EntitySetName).sort();
	});
	await call("retrieveEntity", async () =>
		pick(await api.retrieveEntity({ key: "LogicalName='account'", select: ["LogicalName", "PrimaryIdAttribute", "EntitySetName"] }),
			"LogicalName", "PrimaryIdAttribute", "EntitySetName"));
	await call("retrieveAttributes", async () => {
		const r = await api.retrieveAttributes({ entityKey: "LogicalName='account'", select: ["LogicalName"] });
		return r.value.map((a) => a.LogicalName).filter((n) => ["name", "revenue", "accountid"].includes(n)).sort();
	});
	await call("retrieveAttribute.picklist", async () => {
		const a = await api.retrieveAttribute({
			entityKey: "LogicalName='account'", attributeKey: "LogicalName='industrycode'",
			castType: "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", select: ["LogicalName"], expand: "OptionSet",
		});
		return { name: a.LogicalName, options: a.OptionSet.Options.length > 0 };
	});
	await call("retrieveGlobalOptionSets", async () => {
		const r = await api.retrieveGlobalOptionSets();
		return r.value.map((o) => o.Name).sort();
	});
	await call("retrieveCsdlMetadata", async () => {
		const xml = await api.retrieveCsdlMetadata();
		return {
			isEdmx: xml.includes("<edmx:Edmx"),
			account: xml.includes('<EntityType Name="account"'),
			accountSet: xml.includes('<EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"'),
		};
	});

	// Create.
	const alpha = await call("create", () => api.create({
		collection: "accounts",
		data: { name: "npm Alpha", numberofemployees: 10, revenue: 1000.5, telephone1: "555-0100", industrycode: 1, donotemail: false },
	}));
	const beta = await call("create.returnRepresentation", async () => pick(await api.create({
		collection: "accounts", returnRepresentation: true, select: ["accountid", "name", "numberofemployees"],
		data: { name: "npm Beta", numberofemployees: 20, revenue: 2000 },
	}), "accountid", "name", "numberofemployees"));
	const betaID = beta && beta.accountid;
	await call("create.gamma", () => api.create({
		collection: "accounts", data: { name: "npm Gamma Corp", numberofemployees: 30, telephone1: "555-0300" },
	}));
	await call("create.delta", () => api.create({
		collection: "accounts", data: { name: "Delta by npm", numberofemployees: 40, donotemail: true },
	}));
	const contact = await call("create.bind", () => api.create({
		collection: "contacts",
		data: { firstname: "Ada", lastname: "Npm", fullname: "Ada Npm", "parentcustomerid_account@odata.bind": `/accounts(${alpha})` },
	}));
	await call("create.byEntityName", () => byEntityName.create({ collection: "account", data: { name: "npm Epsilon", numberofemployees: 50 } }));
	await call("create.tooLong", () => api.create({ collection: "accounts", data: { name: "x".repeat(161) } }));
	await call("create.badChoice", () => api.create({ collection: "accounts", data: { name: "npm bad", industrycode: 999 } }));

	// Retrieve one record and single properties.
	await call("retrieve", async () =>
		pick(await api.retrieve({ collection: "accounts", key: alpha, select: ["name", "numberofemployees", "revenue", "telephone1"] }),
			"accountid", "name", "numberofemployees", "revenue", "telephone1"));
	await call("retrieve.formatted", async () => {
		const r = await api.retrieve({ collection: "accounts", key: alpha, select: ["industrycode", "donotemail"], includeAnnotations: "OData.Community.Display.V1.FormattedValue" });
		return { industry: r.industrycode_Formatted, donotemail: r.donotemail_Formatted };
	});
	await call("retrieve.lookup", async () =>
		pick(await api.retrieve({ collection: "contacts", key: contact, select: ["fullname", "_parentcustomerid_value"] }), "fullname", "_parentcustomerid_value"));
	await call("associateSingleValued", async () => {
		await api.associateSingleValued({ collection: "accounts", primaryKey: alpha, navigationProperty: "primarycontactid", relatedCollection: "contacts", relatedKey: contact });
		const ref = await api.retrieve({ collection: "accounts", key: alpha, select: ["primarycontactid/$ref"] });
		const row = await api.retrieve({ collection: "accounts", key: alpha, select: ["_primarycontactid_value"] });
		return { ref: pick(ref, "id", "collection"), lookupSet: row._primarycontactid_value === contact };
	});
	await call("disassociateSingleValued", async () => {
		await api.disassociateSingleValued({ collection: "accounts", primaryKey: alpha, navigationProperty: "primarycontactid" });
		return (await api.retrieve({ collection: "accounts", key: alpha, select: ["_primarycontactid_value"] }))._primarycontactid_value;
	});
	await call("retrieve.property", async () => {
		const r = await api.retrieve({ collection: "accounts", key: alpha, property: "name" });
		return r.value;
	});
	await call("retrieve.propertyValue", () => api.retrieve({ collection: "accounts", key: alpha, property: "numberofemployees/$value" }));
	await call("updateSingleProperty", async () => {
		await api.updateSingleProperty({ collection: "accounts", key: alpha, fieldValuePair: { name: "npm Alpha Renamed" } });
		return (await api.retrieve({ collection: "accounts", key: alpha, select: ["name"] })).name;
	});
	await call("deleteProperty", async () => {
		await api.deleteRecord({ collection: "accounts", key: alpha, property: "telephone1" });
		return (await api.retrieve({ collection: "accounts", key: alpha, select: ["telephone1"] })).telephone1;
	});
	await call("retrieve.unknownProperty", () => api.retrieve({ collection: "accounts", key: alpha, property: "nosuchcolumn" }));

	// Update and upsert.
	await call("update", async () => {
		await api.update({ collection: "accounts", key: alpha, data: { numberofemployees: 11 } });
		return (await api.retrieve({ collection: "accounts", key: alpha, select: ["numberofemployees"] })).numberofemployees;
	});
	await call("update.returnRepresentation", async () =>
		pick(await api.update({ collection: "accounts", key: betaID, data: { numberofemployees: 21 }, returnRepresentation: true, select: ["name", "numberofemployees"] }),
			"name", "numberofemployees"));
	await call("update.missing", () => api.update({ collection: "accounts", key: "00000000-0000-0000-0000-00000000abcd", data: { name: "nobody" } }));
	const upsertID = "0badc0de-0000-4000-8000-000000000001";
	await call("upsert.create", async () => {
		await api.upsert({ collection: "accounts", key: upsertID, data: { name: "npm Upserted", numberofemployees: 60 } });
		return (await api.retrieve({ collection: "accounts", key: upsertID, select: ["name"] })).name;
	});
	await call("upsert.update", async () => {
		await api.upsert({ collection: "accounts", key: upsertID, data: { numberofemployees: 61 } });
		return pick(await api.retrieve({ collection: "accounts", key: upsertID, select: ["name", "numberofemployees"] }), "name", "numberofemployees");
	});
	await call("upsert.createOnly", async () => {
		const r = await api.upsert({ collection: "accounts", key: upsertID, ifnonematch: "*", data: { name: "again" } });
		return { result: r, name: (await api.retrieve({ collection: "accounts", key: upsertID, select: ["name"] })).name };
	});
	await call("etag", async () => {
		const before = await api.retrieve({ collection: "accounts", key: upsertID, select: ["name"] });
		const unchanged = await api.retrieve({ collection: "accounts", key: upsertID, select: ["name"], ifnonematch: before["@odata.etag"] });
		const matched = await api.update({ collection: "accounts", key: upsertID, ifmatch: before["@odata.etag"], data: { numberofemployees: 62 } });
		const stale = await api.update({ collection: "accounts", key: upsertID, ifmatch: before["@odata.etag"], data: { numberofemployees: 63 } });
		const after = await api.retrieve({ collection: "accounts", key: upsertID, select: ["numberofemployees"] });
		return { etag: /^W\/"\d+"$/.test(before["@odata.etag"]), notModified: unchanged === undefined, matched, stale, employees: after.numberofemployees };
	});

	// Queries with $filter, $orderby, $top.
	const q = (name, filter, extra = {}) => call(name, async () => names(await api.retrieveMultiple({ collection: "accounts", select: ["name"], filter, ...extra })));
	await q("filter.startswith", "startswith(name,'npm ')");
	await q("filter.contains", "contains(name,'gamma')");
	await q("filter.endswith", "endswith(name,'by npm')");
	await q("filter.not", "contains(name,'npm') and not startswith(name,'npm')");
	await q("filter.or", "name eq 'npm Beta' or name eq 'Delta by npm'");
	await q("filter.gt", "contains(name,'npm') and numberofemployees gt 30");
	await q("filter.ge.le", "numberofemployees ge 21 and numberofemployees le 40 and contains(name,'npm')");
	await q("filter.lt.ne", "contains(name,'npm') and numberofemployees lt 40 and numberofemployees ne 21");
	await q("filter.null", "contains(name,'npm') and telephone1 eq null");
	await q("filter.bool", "contains(name,'npm') and donotemail eq true");
	await q("filter.guid", `accountid eq ${betaID}`);
	await call("filter.lookup", async () => (await api.retrieveMultiple({ collection: "contacts", select: ["fullname"], filter: `_parentcustomerid_value eq ${alpha}` })).value.map((c) => c.fullname));
	await call("filter.date", async () => {
		// Sample rows were created 2019-2025; the test's clock is in 2026.
		const r = await api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "createdon ge 2026-01-01T00:00:00Z and createdon lt 2027-01-01" });
		return r.value.length;
	});
	await call("orderBy.top", async () => (await api.retrieveMultiple({
		collection: "accounts", select: ["name"], filter: "contains(name,'npm')", orderBy: ["numberofemployees desc"], top: 3,
	})).value.map((r) => r.name));
	await call("filter.unsupportedFunction", () => api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "tolower(name) eq 'x'" }));
	await call("expand.unsupported", () => api.retrieveMultiple({ collection: "accounts", select: ["name"], expand: [{ property: "primarycontactid", select: ["fullname"] }] }));
	await call("filter.unknownProperty", () => api.retrieveMultiple({ collection: "accounts", filter: "nosuch eq 1" }));
	await call("fetchXml.unsupported", () => api.fetch({ collection: "accounts", fetchXml: '<fetch><entity name="account"><attribute name="name"/></entity></fetch>' }));

	// Counts and paging.
	await call("count", () => api.count({ collection: "contacts" }));
	await call("count.filter", () => api.count({ collection: "accounts", filter: "contains(name,'npm')" }));
	await call("retrieveMultiple.count", async () => {
		const r = await api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "startswith(name,'npm ')", count: true });
		return { count: r.oDataCount, rows: r.value.length };
	});
	await call("countAll", () => api.countAll({ collection: "accounts", filter: "contains(name,'npm')", select: ["accountid"] }));
	await call("paging.nextLink", async () => {
		const first = await api.retrieveMultiple({ collection: "contacts", select: ["fullname"], maxPageSize: 15 });
		const second = await api.retrieveMultiple({ collection: "contacts", select: ["fullname"], maxPageSize: 15 }, first.oDataNextLink);
		const ids = new Set([...first.value, ...second.value].map((c) => c.contactid));
		return { first: first.value.length, second: second.value.length, distinct: ids.size, more: !!second.oDataNextLink };
	});
	await call("retrieveAll", async () => {
		const r = await api.retrieveAll({ collection: "contacts", select: ["contactid"], maxPageSize: 7 });
		return { rows: r.value.length, distinct: new Set(r.value.map((c) => c.contactid)).size };
	});

	// Batches.
	await call("batch.changeSet", async () => {
		api.startBatch();
		api.create({ collection: "accounts", contentId: "1", data: { name: "npm Batch Parent", numberofemployees: 70 } });
		api.create({ collection: "contacts", data: { fullname: "Batch Child", lastname: "Child", "parentcustomerid_account@odata.bind": "$1" } });
		// A "$n" contentId addresses the record request n created: PUT $1/telephone1.
		api.updateSingleProperty({ contentId: "$1", fieldValuePair: { telephone1: "555-0700" } });
		const responses = await api.executeBatch();
		const parentID = responses[0];
		const parent = await api.retrieve({ collection: "accounts", key: parentID, select: ["name", "telephone1"] });
		const child = await api.retrieve({ collection: "contacts", key: responses[1], select: ["fullname", "_parentcustomerid_value"] });
		return { responses: responses.length, parent: pick(parent, "name", "telephone1"), childParentOK: child._parentcustomerid_value === parentID };
	});
	await call("batch.associate", async () => {
		api.startBatch();
		api.create({ collection: "contacts", contentId: "1", data: { lastname: "Primary", fullname: "Batch Primary" } });
		api.associateSingleValued({ collection: "accounts", primaryKey: alpha, navigationProperty: "primarycontactid", relatedKey: "$1" });
		const [created] = await api.executeBatch();
		const row = await api.retrieve({ collection: "accounts", key: alpha, select: ["_primarycontactid_value"] });
		return { lookupSet: row._primarycontactid_value === created };
	});
	await call("batch.reads", async () => {
		api.startBatch();
		api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "name eq 'npm Beta'" });
		api.count({ collection: "contacts" });
		api.retrieve({ collection: "accounts", key: betaID, select: ["numberofemployees"] });
		const [list, count, one] = await api.executeBatch();
		return { names: list.value.map((r) => r.name), count, employees: one.numberofemployees };
	});
	await call("batch.rollback", async () => {
		api.startBatch();
		api.create({ collection: "accounts", data: { name: "npm Rolled Back" } });
		api.create({ collection: "accounts", data: { name: "y".repeat(161) } });
		try {
			await api.executeBatch();
			return "batch succeeded";
		} catch (err) {
			const left = await api.retrieveMultiple({ collection: "accounts", select: ["name"], filter: "name eq 'npm Rolled Back'" });
			return { error: describe(err), left: left.value.length };
		}
	});

	// Deletes and errors.
	await call("delete", async () => {
		await api.deleteRecord({ collection: "accounts", key: betaID });
		try {
			await api.retrieve({ collection: "accounts", key: betaID });
			return "still there";
		} catch (err) {
			return describe(err);
		}
	});
	await call("delete.missing", () => api.deleteRecord({ collection: "accounts", key: betaID }));
	await call("unknownEntity", () => api.retrieveMultiple({ collection: "nosuchentities" }));
	await call("unknownEntity.byEntityName", () => byEntityName.retrieveMultiple({ collection: "nosuchentity" }));
	await call("badToken", () => badToken.retrieveMultiple({ collection: "accounts", select: ["name"], top: 1 }));
}

main().then(
	() => process.stdout.write(JSON.stringify({ results }) + "\n"),
	(err) => {
		console.error("client.js:", err && err.stack ? err.stack : err);
		process.exit(1);
	},
);
