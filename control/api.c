#include "server.h"
enum MHD_Result cs_api(cs_req *r)
{
	return cs_error(r, 404, "not_found", NULL, "no such endpoint");
}
